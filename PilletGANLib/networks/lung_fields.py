"""Learned lung-field estimate: a small regressor from a radiograph to the box around both lungs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import Regressor
from torch import nn

__all__ = ["LUNG_FIELD_INPUT_SIZE", "LungFieldNet"]

#: Side, in pixels, of the copy of the network-grid image the regressor reads.
LUNG_FIELD_INPUT_SIZE = 64


class LungFieldNet(nn.Module):
    """MONAI ``Regressor`` from a ``(B, 1, N, N)`` network-grid radiograph to its lung-field box.

    The image is resized (area) to :data:`LUNG_FIELD_INPUT_SIZE`; the output ``(B, 4)`` is
    ``x1, y1, x2, y2`` as fractions of the grid's side (sigmoid, so inside the image).

    Args:
        channels: channels of the regressor's stages (each stage halves the resolution).
        num_res_units: residual units per stage.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), num_res_units: int = 1) -> None:
        super().__init__()
        self.config = {"channels": [int(c) for c in channels], "num_res_units": int(num_res_units)}
        self.regressor = Regressor(in_shape=(1, LUNG_FIELD_INPUT_SIZE, LUNG_FIELD_INPUT_SIZE), out_shape=(4,),
                                   channels=tuple(channels), strides=(2,) * len(channels), num_res_units=num_res_units)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (LUNG_FIELD_INPUT_SIZE, LUNG_FIELD_INPUT_SIZE):
            images = nn.functional.interpolate(images, size=(LUNG_FIELD_INPUT_SIZE,) * 2, mode="area")
        return torch.sigmoid(self.regressor(images))
