"""Light, batch-level augmentation driven by an explicit generator (reproducible per iteration)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_batch"]


def augment_batch(images: torch.Tensor, generator: torch.Generator, masks: torch.Tensor | None = None,
                  max_rotation_deg: float = 5.0, max_scale: float = 0.05, max_shift: float = 0.03,
                  max_gamma: float = 0.1, pad_value: float = -1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Small random rotation, scale, shift and contrast (gamma) per image; values stay in range.

    ``masks`` (``B x 1 x H x W`` in {0, 1}, e.g. cached lung fields) follow the same geometric warp
    (0 outside the image). Lesion maps are not augmented along, so the truth used for validation is
    never touched. Returns ``(images, masks)``; ``masks`` is None when none were given.

    The random parameters are drawn on the host from ``generator`` (the same draws on every device) and
    sent in one pinned, non-blocking copy; everything else runs on the images' device without waiting
    for it (no host synchronization).
    """
    batch = images.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) * 2 - 1) * limit

    angle = uniform(math.radians(max_rotation_deg))
    scale = 1 + uniform(max_scale)
    shift_x, shift_y = uniform(max_shift * 2), uniform(max_shift * 2)
    gamma = torch.exp(uniform(max_gamma))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    parameters = torch.cat([theta.flatten(), gamma]).to(images.dtype)
    if images.device.type == "cuda":
        parameters = parameters.pin_memory()
    parameters = parameters.to(images.device, non_blocking=True)
    theta, gamma = parameters[:6 * batch].view(batch, 2, 3), parameters[6 * batch:]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    low = pad_value
    shifted = images - low
    warped = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + low
    span = (images.amax() - low).clamp_min(1e-6)
    unit = ((warped - low) / span).clamp(0, 1)
    augmented = unit.pow(gamma.view(-1, 1, 1, 1)) * span + low
    if masks is not None:
        masks = (F.grid_sample(masks.to(images.dtype), grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False) >= 0.5).to(images.dtype)
    return augmented, masks
