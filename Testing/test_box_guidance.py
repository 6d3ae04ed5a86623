"""Box guidance (box-supervised training) and the warm start of a run from an earlier run's checkpoint."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_training import TINY, class_manifest

from PilletGANLib.engine import load_config, train
from PilletGANLib.engine.augment import augment_batch
from PilletGANLib.engine.resident import ResidentTrainingSet
from PilletGANLib.engine.warm_start import warm_start
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.losses import PilletGANLoss, box_guidance_loss
from PilletGANLib.networks import PatchDiscriminator, PilletGenerator


def _square(size: int = 8, rows: slice = slice(2, 4), cols: slice = slice(2, 4)) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., rows, cols] = 1.0
    return mask


def test_box_guidance_is_the_share_of_the_difference_outside_the_truth() -> None:
    lesion = _square()
    real = torch.zeros(1, 1, 8, 8)
    inside = real + 0.5 * lesion  # heals only inside the box
    outside = real + 0.5 * (1 - lesion)  # only outside
    both = real + 0.1  # everywhere alike: 60 of 64 pixels lie outside
    guided = torch.tensor([True])
    assert box_guidance_loss(real, inside, lesion, guided).item() == pytest.approx(0.0)
    assert box_guidance_loss(real, outside, lesion, guided).item() == pytest.approx(1.0)
    assert box_guidance_loss(real, both, lesion, guided).item() == pytest.approx(60 / 64)
    # scale-free: how much is healed does not matter, only where
    assert box_guidance_loss(real, real + 3.0, lesion, guided).item() == pytest.approx(60 / 64)


def test_box_guidance_averages_over_the_guided_images_only() -> None:
    lesion = torch.cat([_square(), _square()])
    real = torch.zeros(2, 1, 8, 8)
    healed = torch.cat([0.5 * lesion[:1], 0.5 * (1 - lesion[1:])])  # image 0 inside (0), image 1 outside (1)
    assert box_guidance_loss(real, healed, lesion, torch.tensor([True, True])).item() == pytest.approx(0.5)
    assert box_guidance_loss(real, healed, lesion, torch.tensor([True, False])).item() == pytest.approx(0.0)
    assert box_guidance_loss(real, healed, lesion, torch.tensor([False, True])).item() == pytest.approx(1.0)
    assert box_guidance_loss(real, healed, lesion, torch.tensor([False, False])).item() == 0.0


def test_box_guidance_pulls_the_healing_into_the_box() -> None:
    """Its gradient shrinks the change outside the truth and grows the change inside it."""
    lesion = _square()
    real = torch.zeros(1, 1, 8, 8)
    healed = torch.full((1, 1, 8, 8), -0.2, requires_grad=True)
    box_guidance_loss(real, healed, lesion, torch.tensor([True])).backward()
    gradient = healed.grad[0, 0]
    # a step against the gradient moves outside pixels towards x (up, from -0.2) and inside pixels away from it
    assert (gradient[lesion[0, 0] == 0] < 0).all()
    assert (gradient[lesion[0, 0] == 1] > 0).all()


def test_generator_objective_adds_box_guidance_only_when_weighted() -> None:
    torch.manual_seed(0)
    critic = PatchDiscriminator(in_channels=1, num_domains=2, image_size=16, base_channels=4, num_layers=2)
    real, fake, rec, same = (torch.rand(2, 1, 16, 16) for _ in range(4))
    lesion = (torch.rand(2, 1, 16, 16) > 0.5).float()
    guided = torch.tensor([True, False])
    args = (critic, real, torch.tensor([1, 0]), torch.tensor([0, 0]), fake, rec, same)
    plain_total, plain = PilletGANLoss().generator_loss(*args)
    assert "box_guidance" not in plain
    total, terms = PilletGANLoss(lambda_box=3.0).generator_loss(*args, lesion=lesion, guided=guided)
    assert terms["box_guidance"].item() == pytest.approx(box_guidance_loss(real, fake, lesion, guided).item())
    assert total.item() == pytest.approx(plain_total.item() + 3.0 * terms["box_guidance"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="lesion truth"):
        PilletGANLoss(lambda_box=3.0).generator_loss(*args)


def test_lesion_truth_follows_the_augmentation_with_the_lung_masks() -> None:
    """The trainer warps lung gates and lesion truth in one call: each channel as if warped alone."""
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    lungs, lesion = (torch.rand(3, 1, 32, 32) > 0.5).float(), (torch.rand(3, 1, 32, 32) > 0.7).float()
    _, together = augment_batch(images, torch.Generator().manual_seed(5), masks=torch.cat([lungs, lesion], 1))
    _, lungs_alone = augment_batch(images, torch.Generator().manual_seed(5), masks=lungs)
    _, lesion_alone = augment_batch(images, torch.Generator().manual_seed(5), masks=lesion)
    torch.testing.assert_close(together, torch.cat([lungs_alone, lesion_alone], 1))
    assert not torch.equal(lesion_alone, lesion)  # the warp did move it


def test_resident_set_holds_the_truth_when_asked() -> None:
    items = [{"image": torch.rand(1, 8, 8), "label": label, "lesion": (torch.rand(1, 8, 8) > 0.5).float(),
              "has_truth": bool(label)} for label in (0, 1, 1)]
    plain = ResidentTrainingSet(items, "cpu").batch([2, 0])
    assert set(plain) == {"image", "label"}
    resident = ResidentTrainingSet(items, "cpu", truth=True)
    batch = resident.batch([2, 0])
    torch.testing.assert_close(batch["lesion"], torch.stack([items[2]["lesion"], items[0]["lesion"]]))
    assert batch["has_truth"].tolist() == [True, False]
    assert resident.nbytes > ResidentTrainingSet(items, "cpu").nbytes


def _networks(channels: int = 4) -> tuple[PilletGenerator, PatchDiscriminator]:
    return (PilletGenerator(in_channels=1, num_domains=2, base_channels=channels, num_res_blocks=1),
            PatchDiscriminator(in_channels=1, num_domains=2, image_size=32, base_channels=channels, num_layers=2))


def test_warm_start_loads_generator_critic_and_ema(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source_g, source_d = _networks()
    ema = {k: v.half() for k, v in source_g.state_dict().items()}  # any float dtype loads
    torch.save({"generator": source_g.state_dict(), "discriminator": source_d.state_dict(), "ema": ema,
                "g_optimizer": {}}, tmp_path / "checkpoint.pt")
    torch.manual_seed(2)
    generator, discriminator = _networks()
    loaded_ema = warm_start(tmp_path / "checkpoint.pt", generator, discriminator)
    for name, value in source_g.state_dict().items():
        torch.testing.assert_close(generator.state_dict()[name], value)
    for name, value in source_d.state_dict().items():
        torch.testing.assert_close(discriminator.state_dict()[name], value)
    assert loaded_ema is not None and set(loaded_ema) == set(ema)


def test_warm_start_names_the_file_of_a_bad_checkpoint(tmp_path: Path) -> None:
    generator, discriminator = _networks()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigurationError, match="cannot be read") as err:
        warm_start(broken, generator, discriminator)
    assert str(broken) in str(err.value)
    torch.save({"discriminator": discriminator.state_dict()}, tmp_path / "critic_only.pt")
    with pytest.raises(ConfigurationError, match="no 'generator'"):
        warm_start(tmp_path / "critic_only.pt", generator, discriminator)
    wider, _ = _networks(channels=8)
    torch.save({"generator": wider.state_dict()}, tmp_path / "wider.pt")
    with pytest.raises(ConfigurationError, match="does not match"):
        warm_start(tmp_path / "wider.pt", generator, discriminator)


def test_box_guidance_needs_a_non_negative_weight() -> None:
    with pytest.raises(ConfigurationError, match="lambda_box"):
        load_config(overrides=["lambda_box=-1"])


def boxed_manifest(folder: Path, root: Path, box_of: Callable[[int], tuple[int, int, int, int]]) -> Path:
    """The class manifest with one box ``x, y, width, height = box_of(k)`` on its ``k``-th disease image."""
    manifest = class_manifest(folder, root)
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    disease = 0
    for row in rows:
        box = box_of(disease) if row["label"] == "disease" else ("", "", "", "")
        disease += row["label"] == "disease"
        row.update(zip(("x", "y", "width", "height"), map(str, box), strict=True))
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.mark.slow
def test_box_guided_run_starts_from_the_checkpoint_and_logs_the_term(tmp_path: Path, phantom_folders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    manifest = boxed_manifest(tmp_path, phantom_folders.root, lambda _: (12, 16, 24, 20))
    settings = [*TINY, "val_interval=100", "lr_decay_start=1.0"]
    train(manifest, tmp_path / "first", load_config(overrides=[*settings, "iterations=2"]), progress=False)
    start = tmp_path / "first" / "checkpoint_final.pt"
    # with zero learning rates the warm-started weights must come out exactly as they went in (the norms'
    # running statistics, buffers, move on in training mode)
    frozen = [*settings, "iterations=2", "lambda_box=5", f"init_from={start}", "lr_g=0", "lr_d=0"]
    train(manifest, tmp_path / "guided", load_config(overrides=frozen), progress=False)
    before = torch.load(start, map_location="cpu", weights_only=True)
    after = torch.load(tmp_path / "guided" / "checkpoint_final.pt", map_location="cpu", weights_only=True)
    for network in ("generator", "discriminator", "ema"):
        weights = {k: v for k, v in before[network].items() if not k.rsplit(".", 1)[-1].startswith(("running_", "num_"))}
        assert weights
        for name, value in weights.items():
            torch.testing.assert_close(after[network][name], value, msg=f"{network}.{name}")
    assert after["trainer"]["iteration"] == 2  # a new run: the count starts afresh
    assert json.loads((tmp_path / "guided" / "config.json").read_text())["lambda_box"] == 5
    events = EventAccumulator(str(tmp_path / "guided" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    guidance = [s.value for s in events.Scalars("G/box_guidance")]
    assert guidance and all(0 < value < 1 for value in guidance)
