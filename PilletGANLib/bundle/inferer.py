"""The bundle's inferer: one forward pass, plus the mirrored pass that ``localization.mirror_average`` needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from ..inference.lesion_map import mirrored_translation

__all__ = ["MirrorAveragingInferer"]


class MirrorAveragingInferer(Inferer):
    """``network(inputs)``; when ``enabled``, also the output for the left-right mirrored inputs, mirrored back
    and appended along the channels, so a ``(B, 2, H, W)`` output becomes ``(B, 4, H, W)``.

    :class:`~PilletGANLib.bundle.LesionDifferenced` averages the lesion maps of the two halves, as the
    :class:`~PilletGANLib.inference.Predictor` does for a card with ``localization.mirror_average``.

    Args:
        enabled: run the mirrored pass (the card's ``localization.mirror_average``).
    """

    def __init__(self, enabled: bool = False) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        outputs = network(inputs, *args, **kwargs)
        if not self.enabled:
            return outputs
        return torch.cat([outputs, mirrored_translation(lambda batch: network(batch, *args, **kwargs), inputs)], dim=1)
