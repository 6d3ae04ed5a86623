"""The bundle's inferer: the network's forward pass, plus the mirrored pass when the model's recipe needs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from ..localization import Localizer

__all__ = ["LocalizerInferer"]


class LocalizerInferer(Inferer):
    """``network(inputs)``, and when the ``localizer``'s recipe averages the mirrored pass in
    (:meth:`~PilletGANLib.localization.Localizer.mirrored_healing`), the output for the left-right mirrored
    inputs, mirrored back and appended along the channels: a ``(B, 2, H, W)`` output becomes ``(B, 4, H, W)``,
    which :class:`~PilletGANLib.bundle.LesionDifferenced` reads.

    Args:
        localizer: the model's localizer (``Localizer.from_card``).
    """

    def __init__(self, localizer: Localizer) -> None:
        super().__init__()
        self.localizer = localizer

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        outputs = network(inputs, *args, **kwargs)
        mirrored = self.localizer.mirrored_healing(lambda batch: network(batch, *args, **kwargs), inputs)
        return outputs if mirrored is None else torch.cat([outputs, mirrored], dim=1)
