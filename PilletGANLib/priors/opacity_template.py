"""The opacity-location template: where radiologists' opacity boxes fall within the lung fields.

Pneumonia opacities are not spread evenly over the lungs: on the SIIM training folds they sit mostly in
the lower, lateral lung zones. :func:`fit_opacity_template` counts, on a grid of lung-field
coordinates (``u, v`` = 0 at the lung-field box's left/top edge, 1 at its right/bottom edge, the
grid reaching ``EXTENT`` past them), how often a training image's opacity boxes cover each point,
averaged with its left-right mirror. At inference :func:`warp_opacity_template` draws that template
into each image through the lung-field box a :class:`~PilletGANLib.priors.LungFieldNet` predicts; the
recipe's ``opacity_prior`` adds it to the lesion map, scaled by the image's detection score. The template
alone is also scored as the ``model_prior`` floor of ``pilletgan evaluate``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigurationError, DataError, ModelError
from ..model_store import load_model, save_model
from ..values import is_finite_number

__all__ = ["CARD_KIND", "EXTENT", "MAX_GRID", "OpacityTemplate", "fit_opacity_template", "warp_opacity_template"]

#: Lung-field coordinates the template covers, on both axes: opacity boxes reach past the lung-field box.
EXTENT = (-0.2, 1.2)
#: The largest template grid (cells per side) :func:`fit_opacity_template` makes.
MAX_GRID = 1024
CARD_KIND = "opacity-location-prior"


def fit_opacity_template(frames: Iterable[tuple[Sequence[float], np.ndarray]], grid: int = 48,
                         extent: tuple[float, float] = EXTENT) -> tuple[torch.Tensor, int]:
    """``(grid x grid template, images used)`` from ``(lung-field box, (n, 4) opacity boxes)`` pairs.

    Boxes are ``x1, y1, x2, y2`` in the same pixels per pair; pairs without opacity boxes are skipped. Each
    template cell is the share of the images with boxes whose boxes cover the cell's centre (in lung-field
    coordinates), averaged with its left-right mirror.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= MAX_GRID:
        raise ConfigurationError(f"the template grid must be a whole number of cells from 2 to {MAX_GRID}, got {grid!r}")
    low, high = extent
    centres = low + (np.arange(grid) + 0.5) * (high - low) / grid
    counts = np.zeros((grid, grid))
    used = 0
    for lung_box, boxes in frames:
        x1, y1, x2, y2 = (float(v) for v in lung_box)
        if not (x2 > x1 and y2 > y1):
            raise DataError(f"lung-field box ({x1}, {y1}, {x2}, {y2}) is empty")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        covered = np.zeros((grid, grid), dtype=bool)
        for bx1, by1, bx2, by2 in boxes:
            u1, u2 = (bx1 - x1) / (x2 - x1), (bx2 - x1) / (x2 - x1)
            v1, v2 = (by1 - y1) / (y2 - y1), (by2 - y1) / (y2 - y1)
            covered |= ((centres[None, :] >= u1) & (centres[None, :] < u2)
                        & (centres[:, None] >= v1) & (centres[:, None] < v2))
        counts += covered
        used += 1
    if used == 0:
        raise DataError("no image with opacity boxes to fit the opacity-location prior on")
    template = counts / used
    return torch.from_numpy((template + template[:, ::-1]) / 2).float(), used


def warp_opacity_template(template: torch.Tensor, lung_boxes: torch.Tensor, size: int,
                          extent: tuple[float, float] = EXTENT) -> torch.Tensor:
    """``(B, 1, size, size)`` template drawn into each image through its ``(B, 4)`` lung-field box
    (``x1, y1, x2, y2``, fractions of the side); 0 beyond the template's extent."""
    boxes = lung_boxes.float()
    x1, x2 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2])
    y1, y2 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3])
    centres = (torch.arange(size, dtype=torch.float32, device=boxes.device) + 0.5) / size
    low, high = extent

    def to_grid(start: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:  # image fraction -> grid_sample's [-1, 1]
        frame = (centres[None, :] - start[:, None]) / (stop - start).clamp_min(1e-3)[:, None]
        return (frame - low) / (high - low) * 2 - 1

    gx, gy = to_grid(x1, x2), to_grid(y1, y2)
    grid = torch.stack([gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1)
    source = template.float().to(boxes.device)[None, None].expand(boxes.shape[0], -1, -1, -1)
    return torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class OpacityTemplate:
    """A fitted opacity-location template with its card; ``maps(lung_boxes, size)`` draws it into images."""

    def __init__(self, template: torch.Tensor, card: dict[str, Any] | None = None) -> None:
        if template.ndim != 2 or template.shape[0] != template.shape[1]:
            raise ValueError(f"the opacity template must be a square 2-D grid, got shape {tuple(template.shape)}")
        self.template = template.float()
        self.card = dict(card or {})
        self.extent = tuple(float(v) for v in self.card.get("extent", EXTENT))

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> OpacityTemplate:
        """Load a template file and its card (checksum checked, ``weights_only``)."""
        state, card, weights = load_model(path)
        if card.get("kind") != CARD_KIND or "template" not in state:
            raise ModelError(f"not an opacity-location prior (card kind '{card.get('kind')}')", weights)
        extent = card.get("extent", list(EXTENT))
        if (not isinstance(extent, list) or len(extent) != 2
                or not all(is_finite_number(v) for v in extent)
                or not extent[0] < extent[1]):
            raise ModelError(f"the template card's extent is {extent!r}, not two increasing numbers", weights)
        try:
            return cls(state["template"], {**card, "path": str(weights)})
        except ValueError as err:
            raise ModelError(str(err), weights) from err

    def save(self, path: str | os.PathLike) -> Path:
        """Write the template (``.pt``) and its card (``.json``) beside it."""
        card = {k: v for k, v in self.card.items() if k not in ("path", "sha256", "weights_file", "format")}
        return save_model({"template": self.template},
                          {**card, "kind": CARD_KIND, "extent": list(self.extent),
                           "network": {"template_grid": int(self.template.shape[0])}}, path)

    def maps(self, lung_boxes: torch.Tensor, size: int) -> torch.Tensor:
        """``(B, 1, size, size)`` prior of images with these lung-field boxes (fractions of the side)."""
        return warp_opacity_template(self.template, lung_boxes, size, self.extent)
