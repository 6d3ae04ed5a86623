"""``PilletGANTrainer``: a MONAI trainer whose iteration is the Fixed-Point GAN / PILLET-GAN update."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from monai.engines import Trainer
from monai.engines.utils import default_prepare_batch

from ..inference.backends import native_bf16
from ..losses import PilletGANLoss
from ..transforms.lungs import lung_fields_gate
from .augment import augment_batch
from .distributed import average_gradients

logger = logging.getLogger(__name__)

__all__ = ["EDIT_REGIONS", "PilletGANTrainer", "gated_translation", "iteration_seed", "lung_edit_gates"]

#: Where the generator may change an image during training: anywhere, or only inside the estimated lung fields.
EDIT_REGIONS = ("image", "lungs")


def iteration_seed(seed: int, iteration: int, rank: int = 0) -> int:
    """The RNG seed of one iteration: every random draw depends only on (seed, iteration, rank)."""
    return (seed * 1_000_003 + iteration * 7_919 + rank * 104_729) % (2**63 - 1)


@torch.no_grad()
def lung_edit_gates(images: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``(B, 1, N, N)`` float gates: each image's estimated lung fields (convex hull per lung, widened by
    ``margin`` times the side), the region the inference-time lung gate keeps (see
    :meth:`PilletGANLib.localization.Localizer.gates`)."""
    masks = [lung_fields_gate(image[0].float().cpu().numpy(), margin) for image in images]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)).to(images.device, images.dtype)


def gated_translation(generator: torch.nn.Module, images: torch.Tensor, domains: torch.Tensor,
                      gates: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``G(x, c)`` where ``gates`` is None, else ``x + gates * (G(x, c) - x)``; with the attention maps."""
    out, attention = generator(images, domains)
    return (out if gates is None else images + gates * (out - images)), attention


class PilletGANTrainer(Trainer):
    """Critic update every iteration, generator update every ``n_critic`` iterations.

    Critic: ``D(G(x, c_t)) - D(x) + lambda_cls CE(D_cls(x), c) + lambda_gp GP``. Generator:
    adversarial and classification terms on ``G(x, c_t)`` and on the same-domain translation
    ``G(x, c)`` (Fixed-Point GAN), cycle ``|x - G(G(x, c_t), c)|``, conditional identity
    ``|x - G(x, c)|`` and, for LTA, the sparsity of the same-domain attention maps. Target domains
    are drawn at random (so half the translations stay in the image's own domain, as in Fixed-Point
    GAN). Every random draw of iteration ``i`` is seeded from ``(seed, i, rank)``, which makes a
    resumed run identical to an uninterrupted one.

    With ``edit_region="lungs"`` every translation is ``x + gate * (G(x, c) - x)`` with the image's
    estimated lung fields as gate (the batch's cached ``lung`` masks, warped along with the augmentation,
    when present; else estimated on the augmented images): the generator can only satisfy the critic's classifier by changing
    the lungs, not by painting a fixed pattern over the mediastinum, devices or the abdomen.

    With ``loss.lambda_box > 0`` or ``loss.lambda_side > 0`` (box-supervised) each batch must also hold ``lesion``
    ``(B, 1, N, N)`` and ``has_truth`` ``(B,)``: the truth is warped along with the images, and every diseased image
    with truth that is translated into the healthy domain adds the share of its healing difference outside the
    truth (:func:`~PilletGANLib.losses.box_guidance_loss`) and, when its truth lies in one half, the share in the
    other half (:func:`~PilletGANLib.losses.side_guidance_loss`).

    Args:
        device: training device.
        max_epochs: epochs of ``epoch_length`` iterations (the run stops earlier at ``max_iterations``).
        train_data_loader: yields dicts with ``image`` ``(B, 1, N, N)`` and ``label`` ``(B,)``.
        generator, discriminator: the networks (gradients averaged across ranks under torchrun).
        g_optimizer, d_optimizer: their optimizers.
        loss: the weighted objectives.
        max_iterations: total critic iterations of the run.
        n_critic: critic iterations per generator update.
        gp_interval: the gradient penalty on every ``gp_interval``-th critic iteration (the first included), weighted
            ``gp_interval`` times (lazy regularization); 1 = every iteration.
        ema_generator: a copy of the generator kept as an exponential moving average (or None).
        ema_decay: EMA decay per generator update.
        lr_decay_start: fraction of ``max_iterations`` after which both learning rates decay linearly to 0.
        bf16: bfloat16 autocast for the forward passes (a warning where the device emulates bf16).
        channels_last: channels-last memory format for the inputs.
        compile: run the generator through ``torch.compile`` (the critic stays eager: the gradient penalty
            needs its double backward).
        augment: light random geometry/contrast augmentation of the real images.
        edit_region: ``"image"`` (the published method) or ``"lungs"`` (see above).
        lung_margin: with ``edit_region="lungs"`` and no cached ``lung`` masks, widen the estimated lung
            fields by this fraction of the side (``MapRecipe.lung_margin``).
        seed, rank: seeding of the per-iteration random draws.
        counterfactual_classifier: with ``loss.lambda_counterfactual > 0``, the frozen classifier whose logits on the
            healed twins of diseased images the generator lowers (:func:`~PilletGANLib.losses.counterfactual_loss`).
    """

    def __init__(self, device: torch.device | str, max_epochs: int, train_data_loader: Iterable,
                 generator: torch.nn.Module, discriminator: torch.nn.Module,
                 g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer,
                 loss: PilletGANLoss | None = None, max_iterations: int | None = None, n_critic: int = 5,
                 gp_interval: int = 1, ema_generator: torch.nn.Module | None = None, ema_decay: float = 0.999,
                 lr_decay_start: float = 0.5, bf16: bool = False, channels_last: bool = False,
                 compile: bool = False, augment: bool = True, edit_region: str = "image", lung_margin: float = 0.0,
                 seed: int = 0, rank: int = 0, num_domains: int = 2,
                 epoch_length: int | None = None, prepare_batch: Callable = default_prepare_batch,
                 train_handlers: Sequence | None = None, non_blocking: bool = False,
                 counterfactual_classifier: torch.nn.Module | None = None) -> None:
        super().__init__(device=device, max_epochs=max_epochs, data_loader=train_data_loader,
                         epoch_length=epoch_length, non_blocking=non_blocking, prepare_batch=prepare_batch,
                         handlers=train_handlers, decollate=False)
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.loss = loss or PilletGANLoss()
        self.max_iterations = max_iterations
        self.n_critic = n_critic
        if gp_interval < 1:
            raise ValueError(f"gp_interval must be >= 1, got {gp_interval}")
        self.gp_interval = gp_interval
        self.ema_generator = ema_generator
        self.ema_decay = ema_decay
        self.lr_decay_start = lr_decay_start
        if edit_region not in EDIT_REGIONS:
            raise ValueError(f"edit_region must be one of {EDIT_REGIONS}, got '{edit_region}'")
        self.bf16, self.channels_last, self.augment = bf16, channels_last, augment
        if bf16 and not native_bf16(torch.device(device)):
            logger.warning("bf16 on %s is emulated (no AVX512-BF16 or AMX on this CPU): training will be many times "
                           "slower than without it (amp=false)", device)
        # the compiled wrapper shares the generator's parameters; checkpoints keep saving the generator itself
        self.translator = torch.compile(generator) if compile else generator
        self.edit_region, self.lung_margin = edit_region, lung_margin
        self.seed, self.rank, self.num_domains = seed, rank, num_domains
        self.base_lrs = ([g["lr"] for g in g_optimizer.param_groups], [g["lr"] for g in d_optimizer.param_groups])
        if self.loss.lambda_counterfactual > 0 and counterfactual_classifier is None:
            raise ValueError("lambda_counterfactual > 0 needs counterfactual_classifier")
        self.counterfactual_classifier = counterfactual_classifier
        if counterfactual_classifier is not None:  # frozen: the gradient only passes through it to the twins
            counterfactual_classifier.eval().requires_grad_(False)
        self.last_generator_terms: dict[str, torch.Tensor] = {}
        self.last_penalty: dict[str, torch.Tensor] = {}
        self._ema_pairs: tuple[list[torch.Tensor], ...] | None = None

    def _autocast(self):
        if self.bf16:
            return torch.autocast(device_type=torch.device(self.state.device).type, dtype=torch.bfloat16)
        return nullcontext()

    def _set_learning_rates(self, iteration: int) -> None:
        """Linear decay to 0 over the last ``1 - lr_decay_start`` of the run (constant before)."""
        if not self.max_iterations:
            return
        start = self.lr_decay_start * self.max_iterations
        remaining = (self.max_iterations - iteration) / max(1.0, self.max_iterations - start)
        factor = 1.0 if iteration <= start else max(0.0, remaining)
        for optimizer, base in zip((self.g_optimizer, self.d_optimizer), self.base_lrs, strict=True):
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * factor

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema = decay * ema + (1 - decay) * generator`` for parameters (one foreach lerp); buffers copied."""
        if self.ema_generator is None:
            return
        if self._ema_pairs is None:  # the parameter lists are fixed for a run: collect them once
            self._ema_pairs = ([p for p in self.ema_generator.parameters()], [p for p in self.generator.parameters()],
                               [b for b in self.ema_generator.buffers()], [b for b in self.generator.buffers()])
        ema_params, params, ema_buffers, buffers = self._ema_pairs
        torch._foreach_lerp_(ema_params, params, 1 - self.ema_decay)
        if ema_buffers:
            torch._foreach_copy_(ema_buffers, buffers)

    def _iteration(self, engine: Trainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        iteration = engine.state.iteration  # 1-based, already incremented by ignite
        torch.manual_seed(iteration_seed(self.seed, iteration, self.rank))
        images, labels = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        labels = labels.long().view(-1)
        gates = None
        if self.edit_region == "lungs" and "lung" in batchdata:  # cached by LungFieldsd
            gates = torch.as_tensor(batchdata["lung"]).as_subclass(torch.Tensor).to(images.device, images.dtype)
        lesion, has_truth = self._lesion_truth(batchdata, images)
        if self.augment:
            masks = [m for m in (gates, lesion) if m is not None]
            images, warped = augment_batch(images, torch.Generator().manual_seed(
                iteration_seed(self.seed, iteration, self.rank)), masks=torch.cat(masks, 1) if masks else None)
            if gates is not None:
                gates, warped = warped[:, :1], warped[:, 1:]
            if lesion is not None:
                lesion = warped
        if self.edit_region == "lungs" and gates is None:
            gates = lung_edit_gates(images, self.lung_margin)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = labels[torch.randperm(labels.shape[0], device=labels.device)]
        self._set_learning_rates(iteration)

        generator_step = iteration % self.n_critic == 0

        # critic
        self.generator.train()
        self.discriminator.train()
        with self._autocast():
            if generator_step:
                # G(x, c_t) and G(x, c) in one call, with their graph kept for the generator's update below:
                # the generator does not change before it, so the fakes the critic sees are the ones it updates
                fake, same, same_attention = self._translate_twice(images, targets, labels, gates)
            else:
                with torch.no_grad():
                    fake, _ = gated_translation(self.translator, images, targets, gates)
            penalty_scale = float(self.gp_interval) if (iteration - 1) % self.gp_interval == 0 else 0.0
            d_total, d_terms = self.loss.critic_loss(self.discriminator, images, labels, fake.detach().float(),
                                                     penalty_scale)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_total.backward()
        average_gradients(self.discriminator)
        self.d_optimizer.step()
        # the terms stay 0-d tensors on the device: read (a host synchronization) only when logged
        if "gradient_penalty" in d_terms:
            self.last_penalty = {"gradient_penalty": d_terms["gradient_penalty"]}
        output: dict[str, Any] = {f"D/{k}": v for k, v in {**self.last_penalty, **d_terms}.items()}

        # generator
        if generator_step:
            for p in self.discriminator.parameters():
                p.requires_grad_(False)
            with self._autocast():
                reconstructed, _ = gated_translation(self.translator, fake, labels, gates)
                healing = (labels == 1) & (targets == 0)  # diseased images translated into the healthy domain
                guided = None if has_truth is None else healing & has_truth
                counterfactual_logits = None if self.counterfactual_classifier is None \
                    else self.counterfactual_classifier(fake).reshape(fake.shape[0], -1)[:, 0]
                g_total, g_terms = self.loss.generator_loss(self.discriminator, images, labels, targets,
                                                            fake, reconstructed, same, same_attention,
                                                            lesion=lesion, guided=guided,
                                                            counterfactual_logits=counterfactual_logits,
                                                            healed=healing)
            self.g_optimizer.zero_grad(set_to_none=True)
            g_total.backward()
            average_gradients(self.generator)
            self.g_optimizer.step()
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
            self.update_ema()
            self.last_generator_terms = {f"G/{k}": v for k, v in g_terms.items()}
        output.update(self.last_generator_terms)
        output["lr"] = self.g_optimizer.param_groups[0]["lr"]
        return output

    def _lesion_truth(self, batchdata: dict[str, Any], images: torch.Tensor
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The batch's ``lesion`` truth and ``has_truth`` flags on the images' device when box or side guidance
        is on."""
        if not self.loss.uses_truth:
            return None, None
        if "lesion" not in batchdata or "has_truth" not in batchdata:
            raise ValueError("box or side guidance needs batches with 'lesion' and 'has_truth' (the rasterized truth)")
        lesion = torch.as_tensor(batchdata["lesion"]).as_subclass(torch.Tensor).to(images.device, images.dtype)
        has_truth = torch.as_tensor(batchdata["has_truth"]).as_subclass(torch.Tensor).to(images.device).bool().view(-1)
        return lesion, has_truth

    def _translate_twice(self, images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                         gates: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``G(x, c_t)``, ``G(x, c)`` and the latter's attention maps, from one generator call on both batches
        (every layer normalizes each image on its own, so each half is what a call of its own gives)."""
        batch = images.shape[0]
        translated, attention = gated_translation(self.translator, torch.cat([images, images]),
                                                  torch.cat([targets, labels]),
                                                  None if gates is None else torch.cat([gates, gates]))
        fake, same = translated.split(batch)
        return fake, same, [maps[batch:] for maps in attention]

    def generator_for_export(self) -> torch.nn.Module:
        """The EMA generator when kept, else the trained one."""
        return self.ema_generator if self.ema_generator is not None else self.generator


def make_ema(generator: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of the generator for the moving average."""
    ema = copy.deepcopy(generator).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema
