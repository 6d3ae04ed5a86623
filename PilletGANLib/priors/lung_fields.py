"""The learned lung-field model: a small regressor from a radiograph to the box around both lungs, and the
two-lung drawing of that box that ``lung_prior`` adds to the lesion map.

SIIM's radiologist opacity boxes lie inside the image's lung-field box (97 % of their area on the
validation split), while the rule-based lung estimate (:mod:`PilletGANLib.transforms.lungs`) misses
dense consolidations. :class:`LungFieldNet` predicts the box on any new radiograph; :func:`lung_box_prior`
draws it as two ellipses, one per half of the box, each 1 at its centre and 0 at its edge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import Regressor
from torch import nn

from ..errors import ModelError
from ..model_store import card_number, load_model

__all__ = ["LUNG_FIELD_INPUT_SIZE", "LungFieldEstimator", "LungFieldNet", "lung_box_prior"]

#: Bounds of a lung-field card's network: levels (and residual units a level), channels a level.
_MAX_LEVELS, _MAX_CHANNELS = 8, 1024

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


def lung_box_prior(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 1, size, size)`` two-lung weights inside each ``(x1, y1, x2, y2)`` box (fractions of the side).

    Each half of a box holds an ellipse spanning that half, weighted ``1 - r**2`` (``r`` the
    normalized elliptical radius) and 0 outside; the box's corners are put in order first.
    """
    boxes = boxes.float()
    x1, x2 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2])
    y1, y2 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3])
    centres = (torch.arange(size, dtype=torch.float32, device=boxes.device) + 0.5) / size
    yy, xx = centres[None, :, None], centres[None, None, :]
    half_width = ((x2 - x1) / 4).clamp_min(1e-3)[:, None, None]
    half_height = ((y2 - y1) / 2).clamp_min(1e-3)[:, None, None]
    cy = ((y1 + y2) / 2)[:, None, None]
    prior = torch.zeros(boxes.shape[0], size, size, device=boxes.device)
    for cx in (x1 + (x2 - x1) / 4, x1 + 3 * (x2 - x1) / 4):
        radius = ((xx - cx[:, None, None]) / half_width) ** 2 + ((yy - cy) / half_height) ** 2
        prior = torch.maximum(prior, (1 - radius).clamp_min(0))
    return prior[:, None]


def _check_network(card: dict[str, Any], weights: os.PathLike) -> None:
    """Refuse a lung-field card whose ``network`` is not a few levels of sensible channel counts (a card is a file a
    user may edit; a string or a huge count would fail inside MONAI or ask for more memory than any machine has)."""
    network = card.get("network")
    channels = network.get("channels") if isinstance(network, dict) else None
    if (not isinstance(channels, list) or not 1 <= len(channels) <= _MAX_LEVELS
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= _MAX_CHANNELS for c in channels)):
        raise ModelError(f"the lung-field card's network.channels is {channels!r}, not 1 to {_MAX_LEVELS} whole "
                         f"numbers from 1 to {_MAX_CHANNELS}", weights)
    card_number({**card, "path": weights}, "num_res_units", 1, section="network", integer=True, low=0,
                high=_MAX_LEVELS)


class LungFieldEstimator:
    """A loaded :class:`LungFieldNet`: ``boxes(images)`` and ``prior(images)`` for network-grid batches."""

    def __init__(self, net: LungFieldNet, card: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.card = dict(card or {})

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> LungFieldEstimator:
        """Load weights and card (checksum checked, ``weights_only``)."""
        state, card, weights = load_model(path)
        _check_network(card, weights)
        try:
            net = LungFieldNet(**card["network"])
            net.load_state_dict(state)
        except (TypeError, RuntimeError) as err:
            raise ModelError(f"the weights do not fit the lung-field network the card describes ({err})",
                             weights) from err
        return cls(net, {**card, "path": str(weights)})

    def to(self, device: torch.device | str) -> LungFieldEstimator:
        self.net.to(device)
        return self

    @torch.no_grad()
    def boxes(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` lung-field boxes ``x1, y1, x2, y2`` (fractions of the side) of ``(B, 1, N, N)`` images."""
        device = next(self.net.parameters()).device
        return self.net(images.to(device).float())

    def prior(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N, N)`` two-lung prior (:func:`lung_box_prior`) of network-grid images."""
        return lung_box_prior(self.boxes(images), images.shape[-1]).to(images.device)
