"""Target-domain conditioning shared by the generator and lesion traversal attention."""

from __future__ import annotations

import torch

from ..errors import ConfigurationError

__all__ = ["domain_one_hot", "tile_domain"]


def domain_one_hot(target_domain: torch.Tensor, num_domains: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, num_domains)`` float codes from indices ``(B,)`` or from one-hot / soft codes ``(B, num_domains)``.

    Indices are compared with ``0 .. num_domains - 1`` on their device rather than passed to ``F.one_hot``, whose
    range check reads the indices back to the host: on a GPU a wait for every generator and attention call of a
    training iteration. An index outside the range gives a row of zeros."""
    if target_domain.dim() == 1 and not target_domain.is_floating_point():
        domains = torch.arange(num_domains, device=target_domain.device)
        return (target_domain.long()[:, None] == domains).to(dtype)
    if target_domain.dim() == 2 and target_domain.shape[1] == num_domains:
        return target_domain.to(dtype)
    raise ConfigurationError(f"target_domain must be class indices of shape (B,) or codes of shape (B, {num_domains}), "
                             f"got {target_domain.dtype} of shape {list(target_domain.shape)}")


def tile_domain(code: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Tile ``(B, C)`` codes over the spatial grid of ``like`` (``B x * x H x W``), giving ``B x C x H x W``.

    Built by broadcasting against ``like`` rather than from Python sizes, so traced and exported
    graphs keep the batch and image sizes dynamic.
    """
    return code[:, :, None, None] * torch.ones_like(like[:, :1])
