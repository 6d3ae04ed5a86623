"""Per-method metric accumulation, one image at a time, in memory that does not grow with image size.

Only what the metrics need is kept: the detection score and label of each image, a pixel histogram
for the pixel AUROC (:class:`~PilletGANLib.metrics.PixelAUROC`), per-image localization numbers
and the predicted boxes. Full-resolution maps are dropped after each image.

Localization-only images (``ManifestRecord.localization_only``) get every per-image localization number
(pointing game, Dice, pixel AUROC, laterality) but stay out of detection AUC, RSNA mAP and FROC, which need a
clean image-level label or depend on the mix of disease and healthy images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.manifest import ManifestRecord
from ..errors import DataError
from ..metrics import (
    DICE_TOP_FRACTION,
    PixelAUROC,
    boxes_to_mask,
    detection_auc,
    detection_auc_interval,
    dice,
    froc,
    iou,
    laterality_mass,
    laterality_peak,
    laterality_summary,
    mean_interval,
    pointing_game,
    rsna_map,
    top_fraction_mask,
    truth_side,
)
from .maps import read_array

__all__ = ["INTERVAL_KEYS", "LATERALITY_SUBSETS", "METRIC_KEYS", "ImageScores", "LateralitySubset", "MetricAccumulator",
           "box_arrays", "truth_mask"]

#: Keys of the metrics every method reports (``metrics.json`` and its ``floors`` entries).
METRIC_KEYS = ("detection_auc", "pointing_game", "pixel_auroc", "dice", "iou", "dice_top15", "rsna_map", "froc",
               "laterality_mass", "laterality_peak", "laterality", "intervals")
#: Metrics whose bootstrap 95 % interval ``results()["intervals"]`` gives (laterality's are in its summary).
INTERVAL_KEYS = ("detection_auc", "pointing_game", "dice_top15", "dice")


@dataclass(frozen=True)
class LateralitySubset:
    """One-sided images where brightness does not give the side away: the ``ImageScores`` flag that marks them, the
    key of their count in a paired comparison and how the report names them."""

    flag: str
    count: str
    label: str


#: Laterality is reported again over each of these subsets (``laterality[name]``) and paired by ``compare``.
LATERALITY_SUBSETS = {
    "beyond_density": LateralitySubset("density_misleads", "misled", "where the grey levels lean to the healthy half"),
    "faint": LateralitySubset("faint_opacity", "faint", "where the opacity is no brighter than its mirror"),
}


@dataclass
class ImageScores:
    """One row of ``per_image.csv``; localization fields are None where the image has no truth, laterality
    fields (``truth_side``: ``left``/``right``, and the two hits in {0, 0.5, 1}) where its truth is not in one
    half of the image. ``density_misleads``, for a one-sided image scored beside the ``grey_level`` floor: whether
    the image's own grey levels put more mass on the healthy half (where density alone picks the wrong side).
    ``faint_opacity``, for a one-sided image whose prediction carries the image: whether its truth region is no
    brighter than the same region mirrored into the other half (:func:`~PilletGANLib.metrics.brighter_than_mirror`,
    grey levels scaled as the ``grey_level`` floor does)."""

    key: str
    image: str
    label: str
    score: float
    pointing_hit: bool | None
    dice: float | None
    dice_top15: float | None
    iou: float | None
    n_boxes_pred: int
    n_boxes_true: int
    localization_only: bool = False
    truth_side: str | None = None
    laterality_mass: float | None = None
    laterality_peak: float | None = None
    density_misleads: bool | None = None
    faint_opacity: bool | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def box_arrays(boxes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` boxes and ``(n,)`` scores from objects with ``x1, y1, x2, y2, score`` attributes or keys."""
    rows = []
    for box in boxes:
        get = box.get if isinstance(box, Mapping) else lambda name, b=box: getattr(b, name)
        rows.append([float(get(name)) for name in ("x1", "y1", "x2", "y2", "score")])
    array = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return array[:, :4], array[:, 4]


def truth_mask(record: ManifestRecord, shape: tuple[int, int]) -> np.ndarray | None:
    """Lesion truth of a disease image: its pixel mask when the manifest gives one, else its boxes.

    None for healthy images and for disease images with neither mask nor boxes.
    """
    if not record.is_disease:
        return None
    if record.mask is not None:
        mask = read_array(record.mask) > 0
        if mask.shape != tuple(shape):
            raise DataError(f"mask is {mask.shape[0]} x {mask.shape[1]} but image {record.image} is "
                            f"{shape[0]} x {shape[1]} (rows x cols)", record.mask)
        return mask
    if len(record.boxes):
        return boxes_to_mask(record.boxes, shape)
    return None


class MetricAccumulator:
    """Collects one method's predictions over a dataset and computes :data:`METRIC_KEYS`."""

    def __init__(self) -> None:
        self.scores: list[float] = []
        self.labels: list[bool] = []
        self.pixels = PixelAUROC()
        self.rows: list[ImageScores] = []
        self.predictions: list[tuple[np.ndarray, np.ndarray]] = []
        self.truth_boxes: list[np.ndarray] = []

    def add(self, record: ManifestRecord, heatmap: np.ndarray, score: float, mask: np.ndarray | None,
            boxes: np.ndarray, box_scores: np.ndarray, truth: np.ndarray | None) -> ImageScores:
        """Score one image. ``truth`` is :func:`truth_mask` of the record (None: no localization metrics)."""
        predicted = (np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(box_scores).ravel())
        if not record.localization_only:
            self.scores.append(float(score))
            self.labels.append(record.is_disease)
            self.predictions.append(predicted)
            self.truth_boxes.append(np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4))
        row = ImageScores(key=record.key, image=str(record.image), label=record.label, score=float(score),
                          pointing_hit=None, dice=None, dice_top15=None, iou=None,
                          n_boxes_pred=len(predicted[0]), n_boxes_true=len(record.boxes),
                          localization_only=record.localization_only)
        if truth is not None:
            self.pixels.update(heatmap, truth)
            row.pointing_hit = pointing_game(heatmap, truth)
            row.dice_top15 = dice(top_fraction_mask(heatmap, DICE_TOP_FRACTION), truth)
            if mask is not None:
                row.dice, row.iou = dice(mask, truth), iou(mask, truth)
            row.truth_side = truth_side(truth)
            if row.truth_side is not None:
                row.laterality_mass = laterality_mass(heatmap, row.truth_side)
                row.laterality_peak = laterality_peak(heatmap, row.truth_side)
        self.rows.append(row)
        return row

    @property
    def localized(self) -> list[ImageScores]:
        """The rows of the images scored with truth (those with localization metrics)."""
        return [row for row in self.rows if row.pointing_hit is not None]

    def _mean(self, name: str) -> float | None:
        values = [getattr(row, name) for row in self.localized]
        if not values or any(v is None for v in values):
            return None
        return float(np.mean(values))

    def laterality(self, seed: int = 0) -> dict[str, Any]:
        """:func:`~PilletGANLib.metrics.laterality_summary` over the images whose truth lies in one half."""
        lateral = [row for row in self.rows if row.truth_side is not None]
        return laterality_summary([row.laterality_mass for row in lateral], [row.laterality_peak for row in lateral],
                                  [row.truth_side for row in lateral], seed=seed)

    def laterality_where(self, flag: str, seed: int = 0) -> dict[str, Any]:
        """:meth:`laterality` over the one-sided images whose ``flag`` (one of :data:`LATERALITY_SUBSETS`) is set."""
        subset = [row for row in self.rows if row.truth_side is not None and getattr(row, flag)]
        return laterality_summary([row.laterality_mass for row in subset], [row.laterality_peak for row in subset],
                                  [row.truth_side for row in subset], seed=seed)

    def intervals(self, seed: int = 0) -> dict[str, list[float] | None]:
        """Percentile bootstrap 95 % intervals of :data:`INTERVAL_KEYS` (2,000 resamples): detection AUC with disease
        and healthy images resampled separately, the others over the images with truth; None where the metric is."""
        intervals: dict[str, list[float] | None] = {
            "detection_auc": detection_auc_interval(self.scores, self.labels, seed=seed) if self.scores else None}
        for key, field_name in (("pointing_game", "pointing_hit"), ("dice_top15", "dice_top15"), ("dice", "dice")):
            values = [getattr(row, field_name) for row in self.localized]
            intervals[key] = None if any(v is None for v in values) else mean_interval(values, seed=seed)
        return intervals

    def results(self) -> dict[str, Any]:
        """The metrics under :data:`METRIC_KEYS`; None where the data cannot give one."""
        laterality = self.laterality()
        return {
            "detection_auc": detection_auc(self.scores, self.labels) if self.scores else None,
            "pointing_game": self._mean("pointing_hit"),
            "pixel_auroc": self.pixels.compute(),
            "dice": self._mean("dice"),
            "iou": self._mean("iou"),
            "dice_top15": self._mean("dice_top15"),
            "rsna_map": rsna_map(self.predictions, self.truth_boxes),
            "froc": froc(self.predictions, self.truth_boxes),
            "laterality_mass": laterality["laterality_mass"],
            "laterality_peak": laterality["laterality_peak"],
            "laterality": laterality,
            "intervals": self.intervals(),
        }
