"""Choosing the images shown in the report's overlay grid while the evaluation streams past.

The best and worst images (by a per-image value, ``dice_top15`` in the harness) are kept in
bounded heaps and a random few by reservoir sampling, so only the chosen images' thumbnails are
held in memory, never the whole dataset.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["GROUPS", "THUMBNAIL_SIZE", "OverlayPanel", "OverlaySelector", "make_panel"]

#: Groups of the overlay grid, in display order.
GROUPS = ("best", "worst", "random")
#: Longest side of the thumbnails, in pixels.
THUMBNAIL_SIZE = 256


@dataclass
class OverlayPanel:
    """A thumbnail of one image with its map and boxes, boxes in thumbnail pixels."""

    key: str
    image: np.ndarray
    heatmap: np.ndarray
    truth_boxes: np.ndarray
    predicted_boxes: np.ndarray
    caption: str


def _thumbnail(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D array to ``(rows, cols)`` with Pillow's antialiasing bilinear filter."""
    resized = Image.fromarray(np.asarray(array, dtype=np.float32)).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def make_panel(key: str, image: np.ndarray, heatmap: np.ndarray, truth_boxes: np.ndarray,
               predicted_boxes: np.ndarray, caption: str) -> OverlayPanel:
    """Thumbnail (at most :data:`THUMBNAIL_SIZE` on the long side) of an image, its map and its boxes."""
    rows, cols = heatmap.shape
    factor = min(1.0, THUMBNAIL_SIZE / max(rows, cols))
    size = (max(1, round(rows * factor)), max(1, round(cols * factor)))
    scale = np.asarray([size[1] / cols, size[0] / rows, size[1] / cols, size[0] / rows])
    return OverlayPanel(key=key, image=_thumbnail(image, size), heatmap=_thumbnail(heatmap, size),
                        truth_boxes=np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4) * scale,
                        predicted_boxes=np.asarray(predicted_boxes, dtype=np.float64).reshape(-1, 4) * scale,
                        caption=caption)


class OverlaySelector:
    """Keeps the ``per_group`` best, worst and randomly chosen images offered to it."""

    def __init__(self, per_group: int = 4, seed: int = 0) -> None:
        self.per_group = per_group
        self.rng = np.random.default_rng(seed)
        self.best: list[tuple[float, int, OverlayPanel]] = []
        self.worst: list[tuple[float, int, OverlayPanel]] = []
        self.random: list[OverlayPanel] = []
        self.offered = 0

    def _keep(self, heap: list[tuple[float, int, OverlayPanel]], priority: float, index: int,
              panel: Callable[[], OverlayPanel]) -> None:
        entry = (priority, -index)
        if len(heap) < self.per_group:
            heapq.heappush(heap, (*entry, panel()))
        elif entry > heap[0][:2]:
            heapq.heapreplace(heap, (*entry, panel()))

    def offer(self, value: float, panel: Callable[[], OverlayPanel]) -> None:
        """Consider one image whose ranking value is ``value``; ``panel`` builds its thumbnail if chosen."""
        index = self.offered
        self.offered += 1
        cache: list[OverlayPanel] = []

        def once() -> OverlayPanel:
            if not cache:
                cache.append(panel())
            return cache[0]

        self._keep(self.best, value, index, once)
        self._keep(self.worst, -value, index, once)
        if len(self.random) < self.per_group:
            self.random.append(once())
        else:
            slot = int(self.rng.integers(0, index + 1))
            if slot < self.per_group:
                self.random[slot] = once()

    def panels(self) -> dict[str, list[OverlayPanel]]:
        """Chosen panels per group: best first, worst first, random in sampling order."""
        return {
            "best": [entry[2] for entry in sorted(self.best, key=lambda e: e[:2], reverse=True)],
            "worst": [entry[2] for entry in sorted(self.worst, key=lambda e: e[:2], reverse=True)],
            "random": list(self.random),
        }
