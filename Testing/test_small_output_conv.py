"""The critic's tiny-output convolutions as a matrix product: same values, gradients and penalty gradients."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from PilletGANLib.losses import PilletGANLoss
from PilletGANLib.networks import PatchDiscriminator
from PilletGANLib.networks.small_output_conv import SmallOutputConv2d, small_output_convs


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "bias"),
                         [(2, 4, 2, 1, True), (4, 4, 2, 1, False), (1, 3, 1, 1, False), (4, 4, 1, 0, False)])
def test_small_outputs_match_the_convolution_with_first_and_second_derivatives(size, kernel, stride, padding,
                                                                               bias) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, kernel, stride, padding, bias=bias).double()
    x = torch.randn(3, 6, size, size, dtype=torch.float64, requires_grad=True)
    matmul = small_output_convs(nn.Sequential(conv))[0]
    assert isinstance(matmul, SmallOutputConv2d) and matmul.weight is conv.weight
    reference = F.conv2d(x, conv.weight, conv.bias, stride, padding)
    out = matmul(x)
    assert out.shape == reference.shape and out.shape[-2] * out.shape[-1] <= 4
    torch.testing.assert_close(out, reference)

    def penalty(y: torch.Tensor) -> torch.Tensor:  # a gradient penalty: needs the double backward
        (grad,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return grad.square().sum()

    got = torch.autograd.grad(penalty(out), [x, conv.weight])
    want = torch.autograd.grad(penalty(reference), [x, conv.weight])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_larger_outputs_run_the_usual_convolution() -> None:
    conv = small_output_convs(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1)))[0]
    x = torch.randn(2, 2, 8, 8)
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))


def test_the_critic_keeps_its_state_dict_random_stream_and_penalty() -> None:
    """Swapping its convs changes no parameter name, draws no random number, and the critic's loss and gradients
    are those of plain convolutions."""
    torch.manual_seed(0)
    critic = PatchDiscriminator(image_size=32, base_channels=4, num_layers=5)
    after = torch.rand(1)
    assert all(isinstance(m, SmallOutputConv2d) for m in critic.modules() if isinstance(m, nn.Conv2d))
    plain = _with_plain_convs(critic)
    assert list(plain.state_dict()) == list(critic.state_dict())
    torch.manual_seed(0)
    for layer in _plain_critic_layers():  # what the critic's construction draws with plain convs
        layer.reset_parameters()
    assert torch.equal(torch.rand(1), after)

    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    domain = torch.tensor([0, 1, 0, 1])
    results = []
    for network in (critic, plain):
        torch.manual_seed(1)
        total, _ = PilletGANLoss().critic_loss(network, real, domain, fake)
        results.append((total, torch.autograd.grad(total, list(network.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _plain_critic_layers() -> list[nn.Conv2d]:
    """The convs of ``PatchDiscriminator(image_size=32, base_channels=4, num_layers=5)`` in construction order,
    built as plain ``nn.Conv2d`` without drawing (their ``reset_parameters`` draws what the critic's init does)."""
    channels = [1, 4, 8, 16, 32, 64]
    layers = [nn.utils.skip_init(nn.Conv2d, a, b, 4, 2, 1) for a, b in pairwise(channels)]
    return [*layers, nn.utils.skip_init(nn.Conv2d, 64, 1, 3, padding=1, bias=False),
            nn.utils.skip_init(nn.Conv2d, 64, 2, 1, bias=False)]


def _with_plain_convs(critic: PatchDiscriminator) -> PatchDiscriminator:
    """A copy of ``critic`` whose convs are plain ``nn.Conv2d`` sharing its parameters."""
    import copy

    twin = copy.deepcopy(critic)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SmallOutputConv2d):
                plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                  bias=child.bias is not None)
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)
    return twin
