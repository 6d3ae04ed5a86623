"""PILLET-GAN networks: Fixed-Point GAN reference structure, LTA, sizes, autocast, channels_last, export."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from PilletGANLib.errors import ConfigurationError, OutputError
from PilletGANLib.networks import (
    HealthyTranslator,
    InputStatsInstanceNorm2d,
    LesionTraversalAttention,
    PatchDiscriminator,
    PilletGenerator,
    attention_positions,
    export_onnx,
    export_torchscript,
)
from PilletGANLib.transforms import cxr_preprocessing

FIXED_POINT_G_PARAMETERS = 8_408_576
FIXED_POINT_D_PARAMETERS_256 = 44_784_576


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def seeded_generator(seed: int = 0, **kwargs) -> PilletGenerator:
    torch.manual_seed(seed)
    return PilletGenerator(**kwargs)


class ReferenceResidualBlock(nn.Module):
    """The Fixed-Point GAN bottleneck block, written with plain torch layers."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True, track_running_stats=True),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True, track_running_stats=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def reference_generator_body(in_channels: int = 1, num_domains: int = 2, base: int = 64, blocks: int = 6) -> nn.Sequential:
    """The Fixed-Point GAN generator (StarGAN layout, one grey channel) up to the residual ``delta``."""

    def norm_relu(channels: int) -> list[nn.Module]:
        return [nn.InstanceNorm2d(channels, affine=True, track_running_stats=True), nn.ReLU()]

    layers = [nn.Conv2d(in_channels + num_domains, base, 7, 1, 3, bias=False), *norm_relu(base)]
    layers += [nn.Conv2d(base, base * 2, 4, 2, 1, bias=False), *norm_relu(base * 2)]
    layers += [nn.Conv2d(base * 2, base * 4, 4, 2, 1, bias=False), *norm_relu(base * 4)]
    layers += [ReferenceResidualBlock(base * 4) for _ in range(blocks)]
    layers += [nn.ConvTranspose2d(base * 4, base * 2, 4, 2, 1, bias=False), *norm_relu(base * 2)]
    layers += [nn.ConvTranspose2d(base * 2, base, 4, 2, 1, bias=False), *norm_relu(base)]
    layers += [nn.Conv2d(base, in_channels, 7, 1, 3, bias=False)]
    return nn.Sequential(*layers)


class ReferenceDiscriminator(nn.Module):
    """The Fixed-Point GAN discriminator, written with plain torch layers."""

    def __init__(self, image_size: int, in_channels: int = 1, num_domains: int = 2, base: int = 64, layers: int = 6) -> None:
        super().__init__()
        channels = [in_channels] + [base * 2**i for i in range(layers)]
        body: list[nn.Module] = []
        for c_in, c_out in pairwise(channels):
            body += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.01)]
        self.main = nn.Sequential(*body)
        self.conv1 = nn.Conv2d(channels[-1], 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(channels[-1], num_domains, image_size // 2**layers, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1)


def layer_signature(module: nn.Module) -> list[tuple]:
    """Type and geometry of every conv, norm and activation, in execution order."""
    signature = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):  # SmallOutputConv2d is a Conv2d computed another way
            kind = "ConvTranspose2d" if isinstance(layer, nn.ConvTranspose2d) else "Conv2d"
            signature.append((kind, layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                              layer.padding, layer.bias is not None))
        elif isinstance(layer, nn.InstanceNorm2d):
            signature.append(("InstanceNorm2d", layer.num_features, layer.affine, layer.track_running_stats))
        elif isinstance(layer, nn.ReLU | nn.LeakyReLU):
            signature.append((type(layer).__name__, getattr(layer, "negative_slope", None)))
    return signature


def copy_state_in_order(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``source`` into ``target``, pairing them by order and shape."""
    source_state, target_state = source.state_dict(), target.state_dict()
    assert len(source_state) == len(target_state)
    for (_, value), (name, slot) in zip(source_state.items(), target_state.items(), strict=True):
        assert value.shape == slot.shape, name
        slot.copy_(value)


# -- Fixed-Point GAN reference ----------------------------------------------------------------------------


@pytest.mark.slow
def test_parameter_counts_match_fixed_point_gan() -> None:
    assert count(PilletGenerator(attention="none")) == FIXED_POINT_G_PARAMETERS
    assert count(reference_generator_body()) == FIXED_POINT_G_PARAMETERS
    assert count(PatchDiscriminator(image_size=256)) == FIXED_POINT_D_PARAMETERS_256
    assert count(ReferenceDiscriminator(256)) == FIXED_POINT_D_PARAMETERS_256


@pytest.mark.slow
def test_generator_is_the_reference_network() -> None:
    """Same layer sequence as Fixed-Point GAN; with its weights copied in, the same translation ``tanh(x + delta)``."""
    ours = seeded_generator(attention="none").train()
    torch.manual_seed(1)
    reference = reference_generator_body().train()
    assert layer_signature(ours) == layer_signature(reference)
    copy_state_in_order(reference, ours)
    x, domain = images(), torch.tensor([1, 0])
    one_hot = torch.nn.functional.one_hot(domain, 2).float()[:, :, None, None].expand(-1, -1, 64, 64)
    expected = torch.tanh(x + reference(torch.cat([x, one_hot], dim=1)))
    translated, maps = ours(x, domain)
    assert maps == []
    torch.testing.assert_close(translated, expected, atol=1e-5, rtol=0)
    # and the running statistics advanced exactly like nn.InstanceNorm2d's
    for (name, ours_buffer), reference_buffer in zip(ours.named_buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(ours_buffer, reference_buffer, atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow
def test_discriminator_is_the_reference_network() -> None:
    torch.manual_seed(0)
    ours = PatchDiscriminator(image_size=64)
    reference = ReferenceDiscriminator(64)
    assert layer_signature(ours) == layer_signature(reference)
    copy_state_in_order(reference, ours)
    x = images(size=64)
    for got, expected in zip(ours(x), reference(x), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    realness, logits = ours(x)
    assert realness.shape == (2, 1, 1, 1)
    assert logits.shape == (2, 2)


def test_discriminator_domain_head_follows_image_size() -> None:
    for size, kernel in ((64, 1), (128, 2), (256, 4), (512, 8)):
        assert PatchDiscriminator(image_size=size, base_channels=4).classifier.conv.kernel_size == (kernel, kernel)
    with pytest.raises(ConfigurationError, match="at least 64"):
        PatchDiscriminator(image_size=32)
    with pytest.raises(ConfigurationError, match="built for"):
        PatchDiscriminator(image_size=64, base_channels=4)(images(size=128))


@pytest.mark.slow
def test_eval_mode_translates_like_training_mode() -> None:
    """Per-image statistics in eval mode too (the reference never calls eval()); eval leaves running stats alone."""
    generator = seeded_generator(attention="lta", base_channels=16)
    x, domain = images(), torch.tensor([0, 1])
    trained, _ = generator.train()(x, domain)
    running = [b.clone() for b in generator.buffers()]
    evaluated, _ = generator.eval()(x, domain)
    torch.testing.assert_close(evaluated, trained, atol=1e-6, rtol=0)
    for before, after in zip(running, generator.buffers(), strict=True):
        assert torch.equal(before, after)
    assert all(isinstance(m, InputStatsInstanceNorm2d) for m in generator.modules() if isinstance(m, nn.InstanceNorm2d))


# -- lesion traversal attention ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fusion", ["add", "concat"])
def test_lta_at_initialization_equals_fixed_point_gan(fusion: str) -> None:
    baseline = seeded_generator(attention="none")
    attended = seeded_generator(seed=5, attention="lta", fusion=fusion)
    result = attended.load_state_dict(baseline.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(key.startswith("lta.") for key in result.missing_keys)
    x, domain = images(), torch.tensor([0, 1])
    with torch.no_grad():
        expected, _ = baseline(x, domain)
        translated, maps = attended(x, domain)
    assert (translated - expected).abs().max() < 1e-6
    assert len(maps) == 4
    if fusion == "add":
        assert set(attended.gammas()) == {"res3", "res6", "up1", "up2"}
        assert all(g.detach().item() == 0.0 for g in attended.gammas().values())
        with torch.no_grad():
            attended.gammas()["up2"].fill_(0.5)
            changed, _ = attended(x, domain)
        assert (changed - expected).abs().max() > 1e-3
    else:
        assert attended.gammas() == {}


@pytest.mark.slow
def test_attention_maps_shapes_range_and_domain_dependence() -> None:
    generator = seeded_generator(attention="lta")
    assert generator.attention == "lta" and generator.output == "tanh_residual"
    assert generator.attention_at == ("res3", "res6", "up1", "up2")
    assert list(generator.lta_modules) == ["res3", "res6", "up1", "up2"]
    x = images(size=64)
    with torch.no_grad():
        _, to_healthy = generator(x, torch.tensor([0, 0]))
        _, to_disease = generator(x, torch.tensor([1, 1]))
    assert [tuple(m.shape) for m in to_healthy] == [(2, 1, 16, 16), (2, 1, 16, 16), (2, 1, 32, 32), (2, 1, 64, 64)]
    for healthy_map, disease_map in zip(to_healthy, to_disease, strict=True):
        assert healthy_map.min() >= 0 and healthy_map.max() <= 1
        assert (healthy_map - disease_map).abs().max() > 1e-3


@pytest.mark.slow
def test_custom_attention_positions_are_kept_in_network_order() -> None:
    positions = ("up2", "stem", "down2", "res1")
    generator = seeded_generator(attention="lta", base_channels=8, num_res_blocks=2, attention_at=positions)
    assert generator.attention_at == ("stem", "down2", "res1", "up2")
    _, maps = generator(images(size=32), torch.tensor([1, 0]))
    assert [m.shape[-1] for m in maps] == [32, 8, 8, 32]
    assert attention_positions(2) == ("stem", "down1", "down2", "res1", "res2", "up1", "up2")
    with pytest.raises(ConfigurationError, match="unknown attention positions"):
        PilletGenerator(attention_at=("res7",))
    none = PilletGenerator(attention="none", base_channels=8, num_res_blocks=1)
    assert none.attention_at == () and none.lta_modules == {} and none.gammas() == {}


def test_lesion_traversal_attention_module() -> None:
    torch.manual_seed(0)
    lta = LesionTraversalAttention(16, num_domains=2, fusion="add")
    features = torch.randn(3, 16, 12, 12)
    fused, attention = lta(features, torch.tensor([0, 1, 1]))
    assert torch.equal(fused, features)  # gamma = 0
    assert attention.shape == (3, 1, 12, 12)
    with torch.no_grad():
        lta.gamma.fill_(1.0)
    fused, attention = lta(features, torch.tensor([0, 1, 1]))
    torch.testing.assert_close(fused, features + attention * lta.phi(features))
    # one-hot codes and indices select the same embedding
    _, from_one_hot = lta(features, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    torch.testing.assert_close(from_one_hot, attention)
    with pytest.raises(ConfigurationError):
        LesionTraversalAttention(16, 2, fusion="multiply")


# -- generator behaviour ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_target_domain_as_indices_or_one_hot() -> None:
    generator = seeded_generator(attention="lta", base_channels=8, num_res_blocks=2)
    x = images()
    by_index, maps_index = generator(x, torch.tensor([1, 0]))
    by_code, maps_code = generator(x, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    torch.testing.assert_close(by_index, by_code)
    for a, b in zip(maps_index, maps_code, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ConfigurationError, match="target_domain"):
        generator(x, torch.zeros(2, 3))


@pytest.mark.slow
def test_outputs_tanh_and_clamp_residual() -> None:
    tanh_net = seeded_generator(attention="none", base_channels=8, num_res_blocks=1)
    clamp_net = seeded_generator(attention="none", base_channels=8, num_res_blocks=1, output="clamp_residual")
    x, domain = images(), torch.tensor([0, 1])
    with torch.no_grad():
        tanh_net.head.conv.weight.zero_()
        clamp_net.head.conv.weight.zero_()
        assert torch.equal(clamp_net(x, domain)[0], x)  # delta = 0 reproduces every input value, +-1 included
        torch.testing.assert_close(tanh_net(x, domain)[0], torch.tanh(x))
    with pytest.raises(ConfigurationError):
        PilletGenerator(output="sigmoid")
    with pytest.raises(ConfigurationError):
        PilletGenerator(attention="cbam")
    with pytest.raises(ConfigurationError):
        PilletGenerator(attention="none", fusion="multiply")


@pytest.mark.slow
@pytest.mark.parametrize("size", [36, 64])
def test_any_multiple_of_four(size: int) -> None:
    generator = seeded_generator(attention="lta", base_channels=8, num_res_blocks=2)
    translated, maps = generator(images(size=size), torch.tensor([0, 1]))
    assert translated.shape == (2, 1, size, size)
    assert maps[-1].shape == (2, 1, size, size)
    with pytest.raises(ConfigurationError, match="multiples of 4"):
        generator(images(size=size + 2), torch.tensor([0, 1]))


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["lta", "none"])
def test_autocast_bf16_forward_backward(attention: str) -> None:
    generator = seeded_generator(attention=attention, base_channels=16, num_res_blocks=2)
    discriminator = PatchDiscriminator(image_size=64, base_channels=8)
    x, domain = images(), torch.tensor([0, 1])
    reference, _ = generator(x, domain)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        translated, maps = generator(x, domain)
        realness, logits = discriminator(translated)
    assert translated.dtype == torch.float32  # x + delta is promoted back to float32
    assert logits.dtype == torch.bfloat16 and realness.shape == (2, 1, 1, 1)
    assert (translated - reference).abs().max() < 0.1
    assert all(m.min() >= 0 and m.max() <= 1 for m in maps)
    (realness.float().mean() + translated.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in generator.stem.parameters())


@pytest.mark.slow
def test_channels_last() -> None:
    generator = seeded_generator(attention="lta", base_channels=16, num_res_blocks=2)
    discriminator = PatchDiscriminator(image_size=64, base_channels=8)
    x, domain = images(), torch.tensor([1, 0])
    expected, expected_maps = generator(x, domain)
    expected_realness, expected_logits = discriminator(x)
    generator.to(memory_format=torch.channels_last)
    discriminator.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    translated, maps = generator(x_cl, domain)
    realness, logits = discriminator(x_cl)
    torch.testing.assert_close(translated, expected, atol=1e-5, rtol=0)
    for a, b in zip(maps, expected_maps, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(realness, expected_realness, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=1e-4)
    translated.mean().backward()
    assert generator.stem.conv.weight.grad is not None


# -- deployment -------------------------------------------------------------------------------------------


def radiograph(folders) -> torch.Tensor:
    """A 64 px phantom radiograph with an opacity, preprocessed as the network sees it."""
    first = folders.images_of("train", "disease")[0]
    return cxr_preprocessing(64)({"image": str(first)})["image"].as_tensor()[None]


@pytest.mark.slow
def test_healthy_translator() -> None:
    generator = seeded_generator(attention="lta", base_channels=8, num_res_blocks=2).eval()
    translator = HealthyTranslator(generator, healthy_index=0)
    x = images(batch=3)
    output = translator(x)
    healed, lesion_map = output[:, :1], output[:, 1:]
    expected, attention = generator(x, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(healed, expected)
    torch.testing.assert_close(lesion_map, (expected - x).abs())
    healed_again, attention_again = translator.heal(x)
    torch.testing.assert_close(healed_again, expected)
    assert len(attention_again) == len(attention) > 0
    assert set(translator.state_dict()) == set(generator.state_dict()), "a model file loads into it as it is"
    with pytest.raises(ConfigurationError, match="healthy_index"):
        HealthyTranslator(generator, healthy_index=2)


@pytest.mark.slow
def test_export_into_a_missing_folder(tmp_path: Path) -> None:
    translator = HealthyTranslator(seeded_generator(attention="none", base_channels=4, num_res_blocks=1))
    with pytest.raises(OutputError, match="does not exist"):
        export_torchscript(translator, tmp_path / "missing" / "translator.pt", image_size=16)


@pytest.mark.slow
def test_torchscript_export_matches_eager(tmp_path: Path) -> None:
    translator = HealthyTranslator(seeded_generator(attention="lta", base_channels=16).eval())
    path = export_torchscript(translator, tmp_path / "translator.pt", image_size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["translator.pt"]
    scripted = torch.jit.load(str(path))
    for batch, size in ((2, 64), (1, 32), (3, 48)):  # traced at 2 x 64: batch and size stay dynamic
        x = images(batch=batch, size=size, seed=size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), translator(x), atol=1e-6, rtol=0)


@pytest.mark.slow
def test_onnx_export_on_a_radiograph(tmp_path: Path, phantom_folders) -> None:
    import onnxruntime

    torch.manual_seed(0)
    generator = PilletGenerator(attention="lta")
    with torch.no_grad():  # make the attention branches count
        for gamma in generator.gammas().values():
            gamma.fill_(0.3)
    translator = HealthyTranslator(generator).eval()
    path = export_onnx(translator, tmp_path / "translator.onnx", image_size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["translator.onnx"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = radiograph(phantom_folders)
    assert x.shape == (1, 1, 64, 64)
    (pred,) = session.run(["pred"], {"image": x.numpy()})
    healed, lesion_map = pred[:, :1], pred[:, 1:]
    with torch.no_grad():
        expected = translator(x)
    expected_healed, expected_map = expected[:, :1], expected[:, 1:]
    assert np.abs(healed - expected_healed.numpy()).max() < 1e-4
    assert np.abs(lesion_map - expected_map.numpy()).max() < 1e-4
    assert expected_map.abs().max() > 1e-2  # a non-trivial output was compared
    # dynamic batch
    (batched,) = session.run(["pred"], {"image": torch.cat([x, -x]).numpy()})
    assert batched.shape == (2, 2, 64, 64)
