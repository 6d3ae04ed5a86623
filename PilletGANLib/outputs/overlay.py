"""Overlay PNG: the radiograph in grey, the heat map in colour where it is high, boxes on top."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import atomic_path

__all__ = ["overlay_rgb", "write_overlay_png"]

PREDICTED_COLOR = (255, 40, 40)
TRUTH_COLOR = (40, 220, 40)
MAX_ALPHA = 0.6
COLORMAP = "inferno"


def _box_values(box: Any) -> tuple[float, float, float, float, float | None]:
    """``x1, y1, x2, y2, score`` from a ``LesionBox``, a mapping with those keys, or a 4/5-sequence."""
    if isinstance(box, Mapping):
        return (float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]),
                None if box.get("score") is None else float(box["score"]))
    if hasattr(box, "x1"):
        score = getattr(box, "score", None)
        return float(box.x1), float(box.y1), float(box.x2), float(box.y2), None if score is None else float(score)
    values = [float(v) for v in box]
    return values[0], values[1], values[2], values[3], values[4] if len(values) > 4 else None


def _grey_to_unit(image: np.ndarray) -> np.ndarray:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.float32)
    low, high = np.percentile(finite, (0.5, 99.5))
    if high <= low:
        return np.zeros(image.shape, dtype=np.float32)
    return np.clip((np.nan_to_num(image, nan=low) - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if array.shape[::-1] == size:
        return array
    return np.asarray(Image.fromarray(array.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))


def overlay_rgb(image: np.ndarray, heatmap: np.ndarray, threshold: float | None = None,
                max_side: int = 1024) -> np.ndarray:
    """Blend ``image`` (grey, percentile-windowed) with ``heatmap`` ([0, 1], colour map ``inferno``).

    Heat below ``threshold / 2`` (or 0.2 without a threshold) is transparent; above it the opacity grows
    linearly to ``MAX_ALPHA`` at heat 1. Images larger than ``max_side`` are downscaled, keeping the aspect
    ratio. Returns ``uint8`` RGB of shape ``(rows', cols', 3)``.
    """
    import matplotlib

    image = np.asarray(image, dtype=np.float32)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.ndim != 2 or heatmap.shape != image.shape:
        raise ValueError(f"image {image.shape} and heat map {heatmap.shape} must be the same 2D shape")
    rows, cols = image.shape
    scale = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    grey = _resize(_grey_to_unit(image), size)
    heat = np.clip(np.nan_to_num(_resize(heatmap, size)), 0.0, 1.0)
    floor = 0.5 * threshold if threshold is not None else 0.2
    alpha = MAX_ALPHA * np.clip((heat - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)[..., np.newaxis]
    colours = matplotlib.colormaps[COLORMAP](heat)[..., :3]
    blended = grey[..., np.newaxis] * (1.0 - alpha) + colours * alpha
    return np.round(blended * 255.0).astype(np.uint8)


def _draw_boxes(canvas, boxes: Iterable[Any], colour: tuple[int, int, int], scale: tuple[float, float],
                labelled: bool) -> None:
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    font = ImageFont.load_default(size=max(12, max(canvas.size) // 60))
    for box in boxes:
        x1, y1, x2, y2, score = _box_values(box)
        left, top = x1 * scale[0], y1 * scale[1]
        right, bottom = max(left, x2 * scale[0] - 1), max(top, y2 * scale[1] - 1)
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        if labelled and score is not None:
            draw.text((left + width, max(0, top - font.size - width)), f"{score:.2f}", fill=colour, font=font)


def write_overlay_png(image: np.ndarray, heatmap: np.ndarray, path: str | os.PathLike,
                      boxes: Sequence[Any] | None = None, truth_boxes: Sequence[Any] | None = None,
                      threshold: float | None = None, max_side: int = 1024) -> Path:
    """Write the overlay of :func:`overlay_rgb` as a PNG, with predicted boxes in red and truth boxes in green.

    Args:
        image: the radiograph, ``rows x cols``, air dark.
        heatmap: the heat map in [0, 1], same shape.
        path: destination ``.png``.
        boxes: predicted boxes (``LesionBox``, mappings with ``x1, y1, x2, y2[, score]`` or sequences) in
            source pixels, end exclusive; labelled with their score.
        truth_boxes: reference boxes, same forms, unlabelled.
        threshold: the mask threshold (sets where the colour starts).
        max_side: longest side of the PNG; larger images are downscaled.

    Raises:
        OutputError: mismatched shapes or the file cannot be written.
    """
    from PIL import Image

    path = Path(path)
    try:
        rgb = overlay_rgb(image, heatmap, threshold=threshold, max_side=max_side)
    except ValueError as err:
        raise OutputError(f"cannot draw the overlay: {err}", path) from err
    canvas = Image.fromarray(rgb)
    rows, cols = np.shape(image)
    scale = (canvas.width / cols, canvas.height / rows)
    _draw_boxes(canvas, truth_boxes or (), TRUTH_COLOR, scale, labelled=False)
    _draw_boxes(canvas, boxes or (), PREDICTED_COLOR, scale, labelled=True)
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
    return path
