"""Post-processing of a lesion map in the source pixel grid: heat map, cleaned mask, scored boxes.

numpy and scipy only, so that the 3D Slicer module's threshold slider imports it inside Slicer's own
Python without torch or MONAI. The :class:`~PilletGANLib.inference.Predictor`, the bundle's
``LesionHeatMaskd`` and the Slicer panel all call these functions: one mask rule everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["LesionBox", "clean_mask", "connected_boxes", "heat_from_difference", "mask_components"]


@dataclass
class LesionBox:
    """A connected component of the lesion mask: ``x1, y1, x2, y2`` in source pixels (exclusive end)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    area_pixels: int
    #: the same box in millimetres from the image's top-left corner, when pixel spacing is known
    mm: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2, "score": self.score,
                "area_pixels": self.area_pixels, "mm": list(self.mm) if self.mm else None}


def heat_from_difference(diff: np.ndarray, heat_scale: float) -> np.ndarray:
    """Scale a lesion (difference) map to a heat map in [0, 1]: ``clip(diff / heat_scale, 0, 1)``."""
    heat = np.asarray(diff) / max(heat_scale, 1e-8)
    np.clip(heat, 0.0, 1.0, out=heat)  # in place: one pass fewer over a source-grid map
    return heat.astype(np.float32, copy=False)


def clean_mask(heatmap: np.ndarray, threshold: float, min_component_fraction: float = 0.0) -> np.ndarray:
    """``heatmap >= threshold`` without connected components (4-connected) smaller than
    ``min_component_fraction`` of the image."""
    return mask_components(heatmap, threshold, min_component_fraction)[0]


def mask_components(heatmap: np.ndarray, threshold: float, min_component_fraction: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clean_mask` and the labels of its components (0 outside; what :func:`connected_boxes` takes, so that a
    large image is labelled once)."""
    mask = heatmap >= threshold
    if not mask.any():
        return mask, np.zeros(mask.shape, dtype=np.int32)
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= max(1, int(min_component_fraction * heatmap.size))
    keep[0] = False
    mask = keep[labels]
    labels[~mask] = 0
    return mask, labels


def connected_boxes(mask: np.ndarray, heatmap: np.ndarray, pixel_spacing: Sequence[float] | None = None,
                    labels: np.ndarray | None = None) -> list[LesionBox]:
    """One box per connected component of ``mask``, scored by the component's peak heat, best first; ``labels``: the
    mask's components as :func:`mask_components` labels them (else labelled here)."""
    if labels is None:
        labels, _ = ndimage.label(mask)
    boxes = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        rows, cols = region
        component = labels[region] == index
        peak = float(heatmap[region][component].max())
        y1, y2, x1, x2 = rows.start, rows.stop, cols.start, cols.stop
        mm = None
        if pixel_spacing:
            sr, sc = float(pixel_spacing[0]), float(pixel_spacing[1])
            mm = (x1 * sc, y1 * sr, x2 * sc, y2 * sr)
        boxes.append(LesionBox(float(x1), float(y1), float(x2), float(y2), peak, int(component.sum()), mm))
    return sorted(boxes, key=lambda b: -b.score)
