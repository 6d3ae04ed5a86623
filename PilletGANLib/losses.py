"""PILLET-GAN training losses: WGAN-GP, domain classification, cycle, identity, attention sparsity, box and side
guidance.

One function per term, each with its formula, and :class:`PilletGANLoss`, which weights and combines
them into the critic and generator objectives of Fixed-Point GAN (plus the LTA sparsity term). The
critic is a module returning ``(realness, logits)``, like :class:`~PilletGANLib.networks.PatchDiscriminator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "PilletGANLoss",
    "attention_sparsity_loss",
    "box_guidance_loss",
    "counterfactual_loss",
    "critic_adversarial_loss",
    "cycle_loss",
    "domain_classification_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
    "identity_loss",
    "one_sided",
    "side_balance_weights",
    "side_guidance_loss",
]

Critic = Callable[[torch.Tensor], "torch.Tensor | tuple[torch.Tensor, ...]"]


def _realness(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The realness scores of a critic that returns them alone or first in a tuple."""
    return output[0] if isinstance(output, tuple | list) else output


def penalty_interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``x_hat = a * real + (1 - a) * fake`` with ``a ~ U(0, 1)`` per sample, detached from both and requiring grad."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def penalty_at(realness: torch.Tensor, interpolates: torch.Tensor) -> torch.Tensor:
    """``mean_i (||d realness_i / d x_hat_i||_2 - 1)^2``, with the graph kept for the critic's update."""
    (gradient,) = torch.autograd.grad(realness, interpolates, grad_outputs=torch.ones_like(realness),
                                      create_graph=True)
    norm = gradient.float().flatten(1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: ``mean_i (||d D(x_hat_i) / d x_hat_i||_2 - 1)^2`` with ``x_hat = a * real + (1 - a) * fake``.

    ``a ~ U(0, 1)`` is drawn per sample; ``D`` is the summed realness output of ``critic`` at the
    interpolates (its first output when it returns a tuple). The graph is kept so the penalty can be
    back-propagated into the critic. Inputs are detached: the penalty trains the critic only.
    """
    interpolates = penalty_interpolates(real, fake)
    return penalty_at(_realness(critic(interpolates)), interpolates)


def critic_adversarial_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``mean(D(fake)) - mean(D(real))``."""
    return fake_out.float().mean() - real_out.float().mean()


def generator_adversarial_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss ``-mean(D(fake))``."""
    return -fake_out.float().mean()


def domain_classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ``mean_i -log softmax(logits_i)[c_i]`` against indices ``(B,)`` or class probabilities ``(B, K)``."""
    if target.is_floating_point():
        return F.cross_entropy(logits.float(), target.float())
    return F.cross_entropy(logits.float(), target.long())


def cycle_loss(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Cycle reconstruction ``mean |x - G(G(x, c_target), c_original)|``."""
    return (x.float() - x_rec.float()).abs().mean()


def identity_loss(x: torch.Tensor, x_same: torch.Tensor) -> torch.Tensor:
    """Conditional identity (Fixed-Point GAN) ``mean |x - G(x, c_original)|``: same-domain translation changes nothing."""
    return (x.float() - x_same.float()).abs().mean()


def attention_sparsity_loss(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Attention sparsity ``(1 / L) sum_l mean(A_l)`` over the ``L`` maps of a same-domain translation (0 when ``L = 0``).

    Translating into the domain the image already has should mine nothing, so its maps are pushed to 0.
    """
    if not maps:
        return torch.zeros(())
    return torch.stack([m.float().mean() for m in maps]).mean()


def box_guidance_loss(real: torch.Tensor, healed: torch.Tensor, lesion: torch.Tensor, guided: torch.Tensor
                      ) -> torch.Tensor:
    """Box guidance (box-supervised): the share of the healing difference that lies outside the lesion truth,
    ``mean_i sum(|x_i - h_i| * (1 - m_i)) / sum(|x_i - h_i|)`` over the images with ``guided_i`` true.

    ``healed`` holds each image's translation, ``lesion`` the ``(B, 1, N, N)`` truth in {0, 1} (boxes or masks on
    the network grid) and ``guided`` a ``(B,)`` bool of the images the term applies to (diseased, translated into
    the healthy domain, with truth). 0 when none is. Scale-free: it moves where the
    generator heals, not how much (the domain-classification term asks for the healing).
    """
    difference = (real.float() - healed.float()).abs().flatten(1)
    outside = (difference * (1 - lesion.float().flatten(1))).sum(1) / difference.sum(1).clamp_min(1e-6)
    weights = guided.to(outside.dtype)  # a weighted mean, not an index: no host synchronization on a GPU
    return (outside * weights).sum() / weights.sum().clamp_min(1)


def _halves(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right halves of ``(B, C, N, M)`` images as in the laterality metric: the middle column of an
    odd width belongs to neither."""
    half = tensor.shape[-1] // 2
    return tensor[..., :half], tensor[..., tensor.shape[-1] - half:]


def _truth_sides(lesion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` bools: the truth lies entirely in the left half, entirely in the right half (both false when it
    is empty or crosses the middle)."""
    truth = lesion.float()
    left, right = (half.flatten(1).sum(1) for half in _halves(truth))
    total = truth.flatten(1).sum(1)
    return (left > 0) & (left == total), (right > 0) & (right == total)


def one_sided(lesion: torch.Tensor, eligible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` bools: which of the ``eligible`` images (``(B,)`` bool) have their ``(B, 1, N, N)`` truth entirely in
    the left half, and which entirely in the right half (the images side guidance reaches)."""
    left, right = _truth_sides(lesion)
    return left & eligible, right & eligible



def side_balance_weights(left: int, right: int) -> tuple[float, float]:
    """Per-image weights ``(0.5 / p_left, 0.5 / p_right)`` of :func:`side_guidance_loss` for a training set with
    ``left`` and ``right`` one-sided images: the two sides then count equally, whatever their frequencies.
    ``(1, 1)`` when either side has no image (the term cannot be balanced; it then sees only one side)."""
    if left < 1 or right < 1:
        return 1.0, 1.0
    total = left + right
    return 0.5 * total / left, 0.5 * total / right


def side_guidance_loss(real: torch.Tensor, healed: torch.Tensor, lesion: torch.Tensor, guided: torch.Tensor,
                       side_weights: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Side guidance (box-supervised): on each guided image whose truth lies entirely in one half of the image,
    the share of the healing difference ``|x - h|`` in the *other* half; a weighted mean over those images.

    ``lesion`` is the ``(B, 1, N, N)`` truth in {0, 1} and ``guided`` a ``(B,)`` bool (diseased, translated into
    the healthy domain, with truth). With ``side_weights`` from :func:`side_balance_weights`, left- and
    right-sided images count equally in expectation, so any map that ignores the image (a location prior, a
    symmetric map) scores 0.5 and only a map that finds the sick side scores less. 0 when no image is one-sided.
    Halves are those of the laterality metric (the middle column of an odd width left out).
    """
    difference = (real.float() - healed.float()).abs()
    left_mass, right_mass = (half.flatten(1).sum(1) for half in _halves(difference))
    left_sided, right_sided = _truth_sides(lesion)
    left_sided, right_sided = left_sided & guided, right_sided & guided
    other = torch.where(left_sided, right_mass, left_mass) / (left_mass + right_mass).clamp_min(1e-6)
    weights = left_sided.to(other.dtype) * side_weights[0] + right_sided.to(other.dtype) * side_weights[1]
    count = (left_sided | right_sided).to(other.dtype).sum()  # no host synchronization on a GPU
    return (other * weights).sum() / count.clamp_min(1)


def counterfactual_loss(logits: torch.Tensor, healed: torch.Tensor) -> torch.Tensor:
    """Counterfactual healing: the mean of ``softplus(logit)`` (cross-entropy toward "no opacity") of a frozen
    classifier's opacity ``logits`` ``(B,)`` on the healed twins, over the ``healed`` ``(B,)`` bool images (diseased,
    translated into the healthy domain); 0 when there are none. The gradient reaches the generator through the twins.
    """
    weights = healed.to(logits.dtype)
    return (torch.nn.functional.softplus(logits.float()) * weights).sum() / weights.sum().clamp_min(1)


@dataclass
class PilletGANLoss:
    """Weighted critic and generator objectives of PILLET-GAN (Fixed-Point GAN's weights by default).

    One training iteration, with ``c`` the images' own domains and ``c_t`` the target domains::

        fake, _ = G(x, c_t)
        d_total, d_terms = loss.critic_loss(D, x, c, fake)           # every iteration
        # every n_critic iterations:
        fake, _ = G(x, c_t)
        same, same_maps = G(x, c)
        rec, _ = G(fake, c)
        g_total, g_terms = loss.generator_loss(D, x, c, c_t, fake, rec, same, same_maps)
        # Fixed-Point GAN's full objective also passes same_reconstructed=G(same, c)[0]

    Both methods return ``(total, terms)`` where ``terms`` maps every term's name (and ``"total"``) to
    its detached unweighted value, ready for logging.

    Attributes:
        lambda_gp: weight of the gradient penalty.
        lambda_cls: weight of domain classification (critic on real images, generator on fakes).
        lambda_rec: weight of the cycle loss.
        lambda_id: weight of the conditional identity loss.
        lambda_att: weight of the attention sparsity loss (LTA only).
        lambda_box: weight of the box guidance (box-supervised; 0 = the published objectives, which use no boxes).
        lambda_side: weight of the side guidance (box-supervised; 0 = off).
        lambda_counterfactual: weight of counterfactual healing (a frozen classifier's logits on the healed twins;
            0 = off).
        side_weights: per-image weights of left- and right-sided images in the side guidance
            (:func:`side_balance_weights` of the training set).
        same_domain_adversarial: also apply the adversarial and classification terms to the same-domain
            translation ``G(x, c)``, as Fixed-Point GAN does.
    """

    lambda_gp: float = 10.0
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_id: float = 10.0
    lambda_att: float = 0.1
    lambda_box: float = 0.0
    lambda_side: float = 0.0
    lambda_counterfactual: float = 0.0
    side_weights: tuple[float, float] = (1.0, 1.0)
    same_domain_adversarial: bool = True

    @property
    def uses_truth(self) -> bool:
        """Whether the generator objective reads the lesion truth (box or side guidance)."""
        return self.lambda_box > 0 or self.lambda_side > 0

    def critic_loss(self, critic: Critic, real: torch.Tensor, real_domain: torch.Tensor,
                    fake: torch.Tensor, penalty_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``D(fake) - D(real) + lambda_cls * CE(D_cls(real), c) + penalty_scale * lambda_gp * GP``; ``fake`` is
        detached here.

        The critic scores the real images, the fakes and the penalty's interpolates in one call (its weights
        read once, not three times; the critic must score each image on its own, as a critic without batch
        statistics does); the terms are those of three separate calls. ``penalty_scale`` 0 leaves the penalty out
        (no interpolates, no double backward; ``gradient_penalty`` is then absent from the terms): lazy
        regularization computes it every k-th step with ``penalty_scale`` k.
        """
        batch = real.shape[0]
        scored = [real, fake.detach().to(real.dtype)]
        if penalty_scale > 0:
            interpolates = penalty_interpolates(real, fake)
            scored.append(interpolates)
        realness, logits = critic(torch.cat(scored))
        real_out, fake_out = realness[:batch], realness[batch:2 * batch]
        terms = {
            "adversarial": critic_adversarial_loss(real_out, fake_out),
            "classification": domain_classification_loss(logits[:batch], real_domain),
        }
        total = terms["adversarial"] + self.lambda_cls * terms["classification"]
        if penalty_scale > 0:
            terms["gradient_penalty"] = penalty_at(realness[2 * batch:], interpolates)
            total = total + penalty_scale * self.lambda_gp * terms["gradient_penalty"]
        return total, self._detached(terms, total)

    def generator_loss(self, critic: Critic, real: torch.Tensor, real_domain: torch.Tensor, target_domain: torch.Tensor,
                       fake: torch.Tensor, reconstructed: torch.Tensor, same: torch.Tensor,
                       same_attention: Sequence[torch.Tensor] = (),
                       same_reconstructed: torch.Tensor | None = None, lesion: torch.Tensor | None = None,
                       guided: torch.Tensor | None = None, counterfactual_logits: torch.Tensor | None = None,
                       healed: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator objective.

        ``-D(fake) + lambda_cls * CE(D_cls(fake), c_t) + lambda_rec * |x - rec| + lambda_id * |x - same|
        + lambda_att * mean(A_same)``, plus ``-D(same) + lambda_cls * CE(D_cls(same), c)`` when
        ``same_domain_adversarial`` and ``lambda_rec * |x - G(same, c)|`` when ``same_reconstructed``
        is given (Fixed-Point GAN's full objective has both), plus ``lambda_box * box_guidance(x, fake, lesion,
        guided)`` and ``lambda_side * side_guidance(x, fake, lesion, guided)`` when their weights are positive
        (``lesion`` and ``guided`` are then required), plus ``lambda_counterfactual * counterfactual_loss(
        counterfactual_logits, healed)`` when its weight is positive (a frozen classifier's logits on ``fake`` and the
        diseased-to-healthy flags are then required). ``fake = G(x, c_t)``,
        ``reconstructed = G(fake, c)``, ``same = G(x, c)`` and ``same_attention`` its attention maps.
        """
        batch = fake.shape[0]
        if self.same_domain_adversarial:  # one critic call for both translations
            realness, logits = critic(torch.cat([fake, same.to(fake.dtype)]))
            (fake_out, same_out), (fake_logits, same_logits) = realness.split(batch), logits.split(batch)
        else:
            fake_out, fake_logits = critic(fake)
        terms = {
            "adversarial": generator_adversarial_loss(fake_out),
            "classification": domain_classification_loss(fake_logits, target_domain),
            "cycle": cycle_loss(real, reconstructed),
            "identity": identity_loss(real, same),
            "attention_sparsity": attention_sparsity_loss(same_attention).to(real.device),
        }
        total = (terms["adversarial"] + self.lambda_cls * terms["classification"] + self.lambda_rec * terms["cycle"]
                 + self.lambda_id * terms["identity"] + self.lambda_att * terms["attention_sparsity"])
        if self.same_domain_adversarial:
            terms["same_adversarial"] = generator_adversarial_loss(same_out)
            terms["same_classification"] = domain_classification_loss(same_logits, real_domain)
            total = total + terms["same_adversarial"] + self.lambda_cls * terms["same_classification"]
        if self.uses_truth and (lesion is None or guided is None):
            raise ValueError("lambda_box > 0 or lambda_side > 0 needs the lesion truth and the guided images")
        if self.lambda_box > 0:
            terms["box_guidance"] = box_guidance_loss(real, fake, lesion, guided)
            total = total + self.lambda_box * terms["box_guidance"]
        if self.lambda_side > 0:
            terms["side_guidance"] = side_guidance_loss(real, fake, lesion, guided, self.side_weights)
            total = total + self.lambda_side * terms["side_guidance"]
        if self.lambda_counterfactual > 0:
            if counterfactual_logits is None or healed is None:
                raise ValueError("lambda_counterfactual > 0 needs the classifier's logits on the fakes and the healed "
                                 "flags")
            terms["counterfactual"] = counterfactual_loss(counterfactual_logits, healed)
            total = total + self.lambda_counterfactual * terms["counterfactual"]
        if same_reconstructed is not None:
            terms["same_cycle"] = cycle_loss(real, same_reconstructed)
            total = total + self.lambda_rec * terms["same_cycle"]
        return total, self._detached(terms, total)

    @staticmethod
    def _detached(terms: dict[str, torch.Tensor], total: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**{name: value.detach() for name, value in terms.items()}, "total": total.detach()}
