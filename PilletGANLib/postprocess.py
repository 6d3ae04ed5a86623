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

__all__ = ["LesionBox", "MaskComponents", "clean_mask", "connected_boxes", "heat_from_difference", "mask_components"]


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


@dataclass(frozen=True)
class MaskComponents:
    """A cleaned lesion mask and its connected components (4-connected), labelled inside the mask's bounding window
    only (no label image of the whole source grid is made).

    Attributes:
        mask: the cleaned mask, the heat map's shape.
        window: ``(rows, cols)`` slices of the mask's bounding box (empty for an empty mask).
        labels: the components' labels over ``mask[window]``, 0 outside them.
        regions: ``(label, (rows, cols))`` of every component kept, its slices within the window.
    """

    mask: np.ndarray
    window: tuple[slice, slice]
    labels: np.ndarray
    regions: tuple[tuple[int, tuple[slice, slice]], ...]


def _bounding_window(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def mask_components(heatmap: np.ndarray, threshold: float, min_component_fraction: float = 0.0) -> MaskComponents:
    """``heatmap >= threshold`` without connected components (4-connected) smaller than ``min_component_fraction``
    of the image, and the components it keeps (what :func:`connected_boxes` takes, so that an image is labelled
    once)."""
    mask = np.asarray(heatmap) >= threshold
    window = _bounding_window(mask)
    if window is None:
        return MaskComponents(mask, (slice(0, 0), slice(0, 0)), np.zeros((0, 0), dtype=np.int32), ())
    inside = mask[window]  # a view: dropping a component below clears it in ``mask``
    labels, count = ndimage.label(inside)
    min_size = max(1, int(min_component_fraction * mask.size))
    regions = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[region]
        # a bounding box smaller than the minimum settles it without counting the component's pixels
        if part.size >= min_size and (min_size == 1 or np.count_nonzero(part == index) >= min_size):
            regions.append((index, region))
        else:
            part[part == index] = 0
    if len(regions) < count:
        np.greater(labels, 0, out=inside)
    return MaskComponents(mask, window, labels, tuple(regions))


def clean_mask(heatmap: np.ndarray, threshold: float, min_component_fraction: float = 0.0) -> np.ndarray:
    """``heatmap >= threshold`` without connected components (4-connected) smaller than
    ``min_component_fraction`` of the image."""
    return mask_components(heatmap, threshold, min_component_fraction).mask


def connected_boxes(components: MaskComponents, heatmap: np.ndarray, pixel_spacing: Sequence[float] | None = None
                    ) -> list[LesionBox]:
    """One box per component of a :func:`mask_components` mask, scored by the component's peak heat, best first."""
    rows0, cols0 = components.window[0].start, components.window[1].start
    heat = np.asarray(heatmap)[components.window]
    boxes = []
    for index, region in components.regions:
        rows, cols = region
        component = components.labels[region] == index
        peak = float(heat[region][component].max())
        y1, y2, x1, x2 = rows0 + rows.start, rows0 + rows.stop, cols0 + cols.start, cols0 + cols.stop
        mm = None
        if pixel_spacing:
            sr, sc = float(pixel_spacing[0]), float(pixel_spacing[1])
            mm = (x1 * sc, y1 * sr, x2 * sc, y2 * sr)
        boxes.append(LesionBox(float(x1), float(y1), float(x2), float(y2), peak, int(component.sum()), mm))
    return sorted(boxes, key=lambda b: -b.score)
