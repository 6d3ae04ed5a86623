"""Overlay PNG: the radiograph in grey, the heat map in colour where it is high, boxes on top, and the legend
a reader needs: a colour bar with the mask threshold marked on it, the detection score, the reader's warnings
and a "research use only" banner.

The legend's text comes from :class:`OverlayCaption`; the image itself keeps its place at the top left of the
PNG (pixel ``(x, y)`` of the overlay is pixel ``(x, y)`` of the downscaled radiograph), with the colour bar to
its right and the caption below it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import atomic_path

__all__ = ["BANNER_COLOR", "NO_FINDING", "RESEARCH_BANNER", "OverlayCaption", "overlay_rgb", "write_overlay_png"]

PREDICTED_COLOR = (255, 40, 40)
TRUTH_COLOR = (40, 220, 40)
MAX_ALPHA = 0.6
COLORMAP = "inferno"
#: Printed on every overlay.
RESEARCH_BANNER = "RESEARCH USE ONLY - not a medical device, not for diagnosis"
BANNER_COLOR = (200, 30, 30)
#: The finding shown for a result whose model card has no detection threshold (no call is made).
NO_FINDING = "none (the model card has no detection threshold)"
_WARNING_COLOR = (255, 170, 0)
_TEXT_COLOR = (235, 235, 235)
_BACKGROUND = (0, 0, 0)


@dataclass(frozen=True)
class OverlayCaption:
    """The text of an overlay's legend.

    Attributes:
        score: the image's detection score.
        threshold: the heat-map threshold of the mask (marked on the colour bar).
        finding: the call at a calibrated operating point (e.g. ``"suspected"``), shown after the score when given.
        detection_threshold: the detection score the finding is called at, shown beside it when given.
        detection_specificity: the specificity (on healthy calibration images) that threshold was fitted at.
        warnings: what the reader noticed about the image (e.g. a polarity that contradicts the header).
    """

    score: float | None = None
    threshold: float | None = None
    finding: str | None = None
    detection_threshold: float | None = None
    detection_specificity: float | None = None
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[tuple[str, tuple[int, int, int]]]:
        """``(text, colour)`` lines under the image: score (and finding), warnings, then the banner."""
        facts = ["PilletGAN lesion heat map"]
        if self.score is not None:
            fact = f"score {self.score:.3f}" + (f" - finding: {self.finding}" if self.finding else "")
            if self.finding and self.detection_threshold is not None:
                fact += f" (at score >= {self.detection_threshold:.3f}"
                if self.detection_specificity is not None:
                    fact += f", {100 * self.detection_specificity:g} % specificity on healthy images"
                fact += ")"
            facts.append(fact)
        if self.threshold is not None:
            facts.append(f"mask threshold {self.threshold:.2f}")
        lines = [("  |  ".join(facts), _TEXT_COLOR)]
        lines += [(f"WARNING: {warning}", _WARNING_COLOR) for warning in self.warnings]
        return [*lines, (RESEARCH_BANNER, BANNER_COLOR)]


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


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _wrap(text: str, font, width: int, draw) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels (at spaces)."""
    lines, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current]


def _legend(canvas, caption: OverlayCaption):
    """``canvas`` with a colour bar (threshold marked) to its right and the caption lines below it."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    width, height = canvas.size
    unit = max(12, min(width, height) // 40)
    font = _font(unit)
    bar_width, margin = 2 * unit, unit
    label_width = int(ImageDraw.Draw(canvas).textlength("0.00", font=font)) + margin
    panel = bar_width + 2 * margin + label_width
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [(line, colour) for text, colour in caption.lines()
               for line in _wrap(text, font, width + panel - 2 * margin, probe)]
    footer = margin + len(wrapped) * int(unit * 1.4) + margin
    out = Image.new("RGB", (width + panel, height + footer), _BACKGROUND)
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    top, bottom = margin, height - margin
    left = width + margin
    levels = np.linspace(1.0, 0.0, max(2, bottom - top))
    colours = np.round(colormaps[COLORMAP](levels)[:, :3] * 255).astype(np.uint8)
    out.paste(Image.fromarray(np.repeat(colours[:, None, :], bar_width, axis=1)), (left, top))
    for value in (0.0, 0.5, 1.0):
        y = round(bottom - value * (bottom - top))
        draw.text((left + bar_width + margin // 2, y - unit // 2), f"{value:.1f}", fill=_TEXT_COLOR, font=font)
    if caption.threshold is not None:
        y = round(bottom - min(max(caption.threshold, 0.0), 1.0) * (bottom - top))
        draw.line((left - margin // 2, y, left + bar_width + margin // 2, y), fill=(255, 255, 255), width=2)
    y = height + margin
    for text, colour in wrapped:
        if colour == BANNER_COLOR:  # the banner: white on a red band across the whole width
            draw.rectangle((0, y - unit // 5, out.width, y + int(unit * 1.2)), fill=BANNER_COLOR)
            colour = (255, 255, 255)
        draw.text((margin, y), text, fill=colour, font=font)
        y += int(unit * 1.4)
    return out


def write_overlay_png(image: np.ndarray, heatmap: np.ndarray, path: str | os.PathLike,
                      boxes: Sequence[Any] | None = None, truth_boxes: Sequence[Any] | None = None,
                      threshold: float | None = None, max_side: int = 1024,
                      caption: OverlayCaption | None = None) -> Path:
    """Write the overlay of :func:`overlay_rgb` as a PNG, with predicted boxes in red and truth boxes in green,
    a colour bar and the caption's lines (score, warnings, the research-use banner) beside and below it.

    Args:
        image: the radiograph, ``rows x cols``, air dark.
        heatmap: the heat map in [0, 1], same shape.
        path: destination ``.png``.
        boxes: predicted boxes (``LesionBox``, mappings with ``x1, y1, x2, y2[, score]`` or sequences) in
            source pixels, end exclusive; labelled with their score.
        truth_boxes: reference boxes, same forms, unlabelled.
        threshold: the mask threshold (sets where the colour starts, and is marked on the colour bar).
        max_side: longest side of the image part of the PNG; larger images are downscaled.
        caption: the legend's text; by default only the threshold and the banner.

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
    canvas = _legend(canvas, caption or OverlayCaption(threshold=threshold))
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
    return path
