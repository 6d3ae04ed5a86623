"""PILLET-GAN losses: every term against a value computed by hand, and the combined objectives."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from PilletGANLib.losses import (
    PilletGANLoss,
    attention_sparsity_loss,
    critic_adversarial_loss,
    cycle_loss,
    domain_classification_loss,
    generator_adversarial_loss,
    gradient_penalty,
    identity_loss,
)
from PilletGANLib.networks import PatchDiscriminator, PilletGenerator


class LinearCritic(nn.Module):
    """``f(x) = w . x + b`` (realness) and fixed logits: the gradient of ``f`` is ``w`` everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.tensor(0.25))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        realness = (x * self.weight).flatten(1).sum(1) + self.bias
        return realness[:, None, None, None], torch.zeros(x.shape[0], 2)


class QuadraticCritic(nn.Module):
    """``f(x) = ||x||^2 / 2``, gradient ``x``: the penalty depends on where the interpolates fall."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x**2).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_critic() -> None:
    weight = torch.full((1, 4, 4), 0.5)  # ||w|| = sqrt(16 * 0.25) = 2
    critic = LinearCritic(weight)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((2.0 - 1.0) ** 2)
    # the penalty trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    penalty.backward()
    torch.testing.assert_close(critic.weight.grad, 2 * (2.0 - 1.0) * weight / 2.0)
    # a unit-norm critic is not penalized
    assert gradient_penalty(LinearCritic(torch.full((1, 4, 4), 0.25)), real, fake).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_penalty_interpolates_between_real_and_fake() -> None:
    """With f = ||x||^2 / 2 the gradient is the interpolate itself; for real = fake = x it is x, whatever alpha is."""
    x = torch.zeros(2, 1, 2, 2)
    x[0].fill_(1.0)  # ||x_0|| = 2
    x[1].fill_(2.0)  # ||x_1|| = 4
    expected = ((2 - 1) ** 2 + (4 - 1) ** 2) / 2
    assert gradient_penalty(QuadraticCritic(), x, x.clone()).item() == pytest.approx(expected)
    # real = 0, fake = x: the interpolate is (1 - alpha) x, so the gradient norm is (1 - alpha) ||x||
    zero, norms = torch.zeros_like(x), torch.tensor([2.0, 4.0])
    for seed in range(3):
        torch.manual_seed(seed)
        alpha = torch.rand(2, 1, 1, 1).flatten()  # the per-sample draw gradient_penalty makes
        torch.manual_seed(seed)
        penalty = gradient_penalty(QuadraticCritic(), zero, x).item()
        assert penalty == pytest.approx((((1 - alpha) * norms - 1) ** 2).mean().item(), rel=1e-5)


@pytest.mark.slow
def test_gradient_penalty_on_the_patch_discriminator_under_autocast() -> None:
    torch.manual_seed(0)
    critic = PatchDiscriminator(image_size=64, base_channels=8)
    real, fake = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 1, 64, 64) * 2 - 1
    penalty = gradient_penalty(critic, real, fake)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty_bf16 = gradient_penalty(critic, real, fake)
    assert penalty.dtype == penalty_bf16.dtype == torch.float32
    assert torch.isfinite(penalty) and penalty.item() >= 0
    penalty_bf16.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


def test_adversarial_terms() -> None:
    real_out = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(2, 1, 1, 2)  # mean 3
    fake_out = torch.tensor([-1.0, 0.0, 1.0, 4.0]).view(2, 1, 1, 2)  # mean 1
    assert critic_adversarial_loss(real_out, fake_out).item() == pytest.approx(1.0 - 3.0)
    assert generator_adversarial_loss(fake_out).item() == pytest.approx(-1.0)


def test_domain_classification_loss() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax rows (1/2, 1/2) and (3/4, 1/4)
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert domain_classification_loss(logits, torch.tensor([1, 1])).item() == pytest.approx(expected)
    one_hot = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert domain_classification_loss(logits, one_hot).item() == pytest.approx(expected)


def test_cycle_identity_and_sparsity_terms() -> None:
    x = torch.zeros(1, 1, 2, 2)
    shifted = torch.tensor([0.5, -0.5, 1.0, 0.0]).view(1, 1, 2, 2)  # mean |.| = 0.5
    assert cycle_loss(x, shifted).item() == pytest.approx(0.5)
    assert identity_loss(x, shifted).item() == pytest.approx(0.5)
    maps = [torch.full((2, 1, 4, 4), 0.2), torch.full((2, 1, 8, 8), 0.6)]
    assert attention_sparsity_loss(maps).item() == pytest.approx(0.4)
    assert attention_sparsity_loss([]).item() == 0.0


def test_critic_loss_combines_the_weighted_terms() -> None:
    weight = torch.full((1, 4, 4), 0.5)
    critic = LinearCritic(weight)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4, requires_grad=True)
    loss = PilletGANLoss(lambda_gp=10.0, lambda_cls=2.0)
    total, terms = loss.critic_loss(critic, real, torch.tensor([0, 1, 1]), fake)
    wasserstein = (0.5 * fake.detach().flatten(1).sum(1)).mean() - (0.5 * real.flatten(1).sum(1)).mean()
    classification = math.log(2.0)  # zero logits
    assert terms["adversarial"].item() == pytest.approx(wasserstein.item(), rel=1e-5)
    assert terms["classification"].item() == pytest.approx(classification)
    assert terms["gradient_penalty"].item() == pytest.approx(1.0)
    assert total.item() == pytest.approx(wasserstein.item() + 2.0 * classification + 10.0 * 1.0, rel=1e-5)
    assert terms["total"].item() == pytest.approx(total.item())
    assert not any(value.requires_grad for value in terms.values())
    total.backward()
    assert fake.grad is None  # the critic step does not reach the generator
    lazy_total, lazy_terms = loss.critic_loss(critic, real, torch.tensor([0, 1, 1]), fake, penalty_scale=0.0)
    assert "gradient_penalty" not in lazy_terms  # no interpolates, no double backward
    assert lazy_total.item() == pytest.approx(wasserstein.item() + 2.0 * classification, rel=1e-5)
    scaled_total, _ = loss.critic_loss(critic, real, torch.tensor([0, 1, 1]), fake, penalty_scale=4.0)
    assert scaled_total.item() == pytest.approx(lazy_total.item() + 4.0 * 10.0 * 1.0, rel=1e-5)


def test_generator_loss_terms_and_weights() -> None:
    critic = LinearCritic(torch.full((1, 2, 2), 1.0))
    real = torch.zeros(2, 1, 2, 2)
    fake = torch.full((2, 1, 2, 2), 0.5, requires_grad=True)  # realness 4 * 0.5 + 0.25 = 2.25
    reconstructed = torch.full((2, 1, 2, 2), 0.1)
    same = torch.full((2, 1, 2, 2), -0.2)  # realness -0.55
    maps = [torch.full((2, 1, 2, 2), 0.3)]
    labels, targets = torch.tensor([0, 1]), torch.tensor([1, 0])
    log2 = math.log(2.0)

    plain = PilletGANLoss(lambda_att=0.5, same_domain_adversarial=False)
    total, terms = plain.generator_loss(critic, real, labels, targets, fake, reconstructed, same, maps)
    expected = {"adversarial": -2.25, "classification": log2, "cycle": 0.1, "identity": 0.2, "attention_sparsity": 0.3}
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5), name
    assert total.item() == pytest.approx(-2.25 + log2 + 10 * 0.1 + 10 * 0.2 + 0.5 * 0.3, rel=1e-5)
    total.backward()
    assert fake.grad is not None

    full = PilletGANLoss()  # Fixed-Point GAN: same-domain adversarial + classification, and same-domain cycle
    same_reconstructed = torch.full((2, 1, 2, 2), 0.05)
    total_full, terms_full = full.generator_loss(critic, real, labels, targets, fake, reconstructed, same, maps,
                                                 same_reconstructed=same_reconstructed)
    assert terms_full["same_adversarial"].item() == pytest.approx(0.55, rel=1e-5)
    assert terms_full["same_classification"].item() == pytest.approx(log2)
    assert terms_full["same_cycle"].item() == pytest.approx(0.05)
    assert total_full.item() == pytest.approx(
        -2.25 + log2 + 10 * 0.1 + 10 * 0.2 + 0.1 * 0.3 + 0.55 + log2 + 10 * 0.05, rel=1e-5)


@pytest.mark.slow
def test_one_training_iteration_with_the_real_networks() -> None:
    """The critic and generator objectives back-propagate through the real networks, attention 'none' included."""
    torch.manual_seed(0)
    critic = PatchDiscriminator(image_size=64, base_channels=8)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    labels, targets = torch.tensor([0, 1]), torch.tensor([1, 0])
    loss = PilletGANLoss()
    for attention in ("lta", "none"):
        generator = PilletGenerator(attention=attention, base_channels=8, num_res_blocks=2)
        fake, _ = generator(x, targets)
        d_total, _ = loss.critic_loss(critic, x, labels, fake)
        d_total.backward()
        assert critic.realness.conv.weight.grad is not None and generator.stem.conv.weight.grad is None
        fake, _ = generator(x, targets)
        same, same_maps = generator(x, labels)
        reconstructed, _ = generator(fake, labels)
        g_total, g_terms = loss.generator_loss(critic, x, labels, targets, fake, reconstructed, same, same_maps)
        g_total.backward()
        assert torch.isfinite(g_total)
        assert generator.stem.conv.weight.grad is not None
        assert (g_terms["attention_sparsity"].item() > 0) == (attention == "lta")
        if attention == "lta":
            assert all(gamma.grad is not None for gamma in generator.gammas().values())
        critic.zero_grad()


def test_one_critic_call_gives_the_terms_and_gradients_of_separate_calls() -> None:
    """The objectives score real, fake and interpolated images (and both translations) in one critic call:
    the terms and the critic's gradients are those of one call per batch."""
    torch.manual_seed(0)
    critic = PatchDiscriminator(image_size=16, base_channels=4, num_layers=2)
    real, fake, same, reconstructed = (torch.rand(4, 1, 16, 16) * 2 - 1 for _ in range(4))
    domain, target = torch.tensor([0, 1, 0, 1]), torch.tensor([1, 1, 0, 0])
    loss = PilletGANLoss()

    torch.manual_seed(1)
    total, terms = loss.critic_loss(critic, real, domain, fake)
    grads = torch.autograd.grad(total, list(critic.parameters()))
    torch.manual_seed(1)
    expected_terms = {"adversarial": critic_adversarial_loss(critic(real)[0], critic(fake)[0]),
                      "classification": domain_classification_loss(critic(real)[1], domain),
                      "gradient_penalty": gradient_penalty(critic, real, fake)}
    expected = (expected_terms["adversarial"] + expected_terms["classification"]
                + 10 * expected_terms["gradient_penalty"])
    for name, value in expected_terms.items():
        assert float(terms[name]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
    for got, want in zip(grads, torch.autograd.grad(expected, list(critic.parameters())), strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)

    _, g_terms = loss.generator_loss(critic, real, domain, target, fake, reconstructed, same)
    assert float(g_terms["adversarial"]) == pytest.approx(float(generator_adversarial_loss(critic(fake)[0])), rel=1e-5)
    assert float(g_terms["same_classification"]) == pytest.approx(
        float(domain_classification_loss(critic(same)[1], domain)), rel=1e-5)
