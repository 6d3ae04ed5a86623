"""Detection and localization metrics for lesion maps, masks and boxes (numpy; any image size).

Conventions shared by every function here:

- Boxes are ``x1, y1, x2, y2`` in continuous pixel coordinates of the image they belong to: pixel
  ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` and its centre is ``(col + 0.5, row + 0.5)``.
  A pixel (or a point) is inside a box when ``x1 <= x < x2`` and ``y1 <= y < y2``.
- Maps are ``rows x cols`` arrays where higher means more likely lesion.
- Functions return ``None`` where the data cannot give the metric (for example an AUC with one class).
- The image's left and right halves are split at its column midpoint ``cols / 2``: a pixel is in the left
  half when its centre ``col + 0.5 < cols / 2``, in the right half when ``col + 0.5 > cols / 2``; with an odd
  number of columns the middle column belongs to neither. "Left" and "right" are the image's, not the patient's.

Definitions in words, with their floors: ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from monai.metrics import compute_roc_auc
from scipy import stats

__all__ = [
    "DICE_TOP_FRACTION",
    "FROC_FP_RATES",
    "LATERALITY_SIDES",
    "RSNA_IOU_THRESHOLDS",
    "PixelAUROC",
    "box_iou",
    "boxes_to_mask",
    "brighter_than_mirror",
    "detection_auc",
    "detection_auc_interval",
    "dice",
    "froc",
    "iou",
    "laterality_mass",
    "laterality_peak",
    "laterality_summary",
    "mean_interval",
    "pixel_auroc",
    "pointing_game",
    "roc_curve",
    "rsna_map",
    "top_fraction_mask",
    "truth_side",
]

#: IoU thresholds of the RSNA Pneumonia Detection Challenge metric: 0.40, 0.45, ..., 0.75.
RSNA_IOU_THRESHOLDS = tuple(round(0.40 + 0.05 * i, 2) for i in range(8))
#: Average numbers of false positives per image at which FROC sensitivities are reported.
FROC_FP_RATES = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0)
#: Fraction of a map's highest pixels compared with the truth for ``dice_top15`` (maps without a threshold).
DICE_TOP_FRACTION = 0.15
#: The halves of an image that laterality compares (the image's own left and right, see the module docstring).
LATERALITY_SIDES = ("left", "right")


def _binary_labels(scores: Sequence[float], labels: Sequence[int | bool]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores, labels


def detection_auc(scores: Sequence[float], labels: Sequence[int | bool]) -> float | None:
    """Image-level ROC AUC (MONAI's rank implementation; tied scores count one half).

    ``labels`` are 1/True for disease. Returns None when either class is absent.
    """
    scores, labels = _binary_labels(scores, labels)
    if labels.all() or not labels.any():
        return None
    return float(compute_roc_auc(torch.as_tensor(scores), torch.as_tensor(labels.astype(np.int64))))


def detection_auc_interval(scores: Sequence[float], labels: Sequence[int | bool], resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap interval of :func:`detection_auc`, disease and healthy images resampled separately (so
    every resample has both classes); None when either class is absent.

    Each resample's AUC is the Mann-Whitney statistic from average ranks (ties count one half, as in
    :func:`detection_auc`), computed for all resamples at once.
    """
    scores, labels = _binary_labels(scores, labels)
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        return None
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples} and {confidence}")
    rng = np.random.default_rng(seed)
    drawn = np.hstack([rng.choice(positives, (resamples, positives.size)),
                       rng.choice(negatives, (resamples, negatives.size))])
    positive_ranks = stats.rankdata(drawn, axis=1)[:, :positives.size].sum(1)
    samples = (positive_ranks - positives.size * (positives.size + 1) / 2) / (positives.size * negatives.size)
    tail = (1 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(samples, [tail, 100 - tail])]


def roc_curve(scores: Sequence[float], labels: Sequence[int | bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from ``(0, 0)`` to ``(1, 1)``.

    Returns ``(fpr, tpr, thresholds)``; the first threshold is ``+inf``. Tied scores form one point.
    Raises ValueError when either class is absent.
    """
    scores, labels = _binary_labels(scores, labels)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs both classes")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last_of_group]
    fp = np.cumsum(~labels)[last_of_group]
    fpr = np.r_[0.0, fp / negatives]
    tpr = np.r_[0.0, tp / positives]
    return fpr, tpr, np.r_[np.inf, scores[last_of_group]]


def boxes_to_mask(boxes: np.ndarray | Sequence[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the pixels whose centre lies inside any of the ``(n, 4)`` boxes."""
    rows, cols = int(shape[0]), int(shape[1])
    mask = np.zeros((rows, cols), dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        # centre c + 0.5 in [x1, x2)  <=>  c in [ceil(x1 - 0.5), ceil(x2 - 0.5))
        c1, c2 = (int(np.clip(np.ceil(v - 0.5), 0, cols)) for v in (x1, x2))
        r1, r2 = (int(np.clip(np.ceil(v - 0.5), 0, rows)) for v in (y1, y2))
        mask[r1:r2, c1:c2] = True
    return mask


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} and {b.shape}")


def pointing_game(heatmap: np.ndarray, gt_mask: np.ndarray) -> bool:
    """True when the map's maximum lies inside the truth mask.

    With several pixels at the maximum, the first in row-major order is used (``np.argmax``), so a
    constant map points at the top-left pixel and does not score by luck.
    """
    heatmap, gt_mask = np.asarray(heatmap), np.asarray(gt_mask, dtype=bool)
    _same_shape(heatmap, gt_mask, "pointing game")
    return bool(gt_mask.flat[int(np.argmax(heatmap))])


def dice(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Dice overlap ``2|A and B| / (|A| + |B|)`` of two boolean masks; 1.0 when both are empty."""
    pred, truth = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    _same_shape(pred, truth, "dice")
    total = int(pred.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, truth).sum()) / total


def iou(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    pred, truth = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    _same_shape(pred, truth, "iou")
    union = int(np.logical_or(pred, truth).sum())
    return 1.0 if union == 0 else int(np.logical_and(pred, truth).sum()) / union


def top_fraction_mask(heatmap: np.ndarray, fraction: float = DICE_TOP_FRACTION) -> np.ndarray:
    """Mask of exactly ``round(fraction * size)`` pixels with the highest values.

    Pixels tied at the cut-off value are taken in row-major order, so the count is exact for any map.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    values = np.asarray(heatmap, dtype=np.float64).ravel()
    count = round(fraction * values.size)
    flat = np.zeros(values.size, dtype=bool)
    if count > 0:
        cutoff = np.partition(values, values.size - count)[values.size - count]
        flat[values > cutoff] = True
        tied = np.flatnonzero(values == cutoff)
        flat[tied[: count - int(flat.sum())]] = True
    return flat.reshape(np.shape(heatmap))


class PixelAUROC:
    """Pixel-level ROC AUC accumulated image by image in bounded memory.

    Each pixel value (as float32) goes into one of 2**20 histogram bins that follow the order of
    floating-point numbers over their whole range, one bin per 2**-11 relative step (the top 20
    bits of an order-preserving integer key). The AUC is exact for values in different bins; values
    in the same bin (closer than about 0.05 % of their magnitude) count as ties. Memory: 16 MiB.
    """

    BITS = 20

    def __init__(self) -> None:
        self.positive = np.zeros(1 << self.BITS, dtype=np.int64)
        self.negative = np.zeros(1 << self.BITS, dtype=np.int64)

    @classmethod
    def bins(cls, values: np.ndarray) -> np.ndarray:
        """Order-preserving bin index of each value."""
        values = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 becomes +0.0
        if not np.all(np.isfinite(values)):
            raise ValueError("maps must be finite")
        bits = values.view(np.uint32)
        keys = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
        return (keys >> np.uint32(32 - cls.BITS)).astype(np.int64)

    def update(self, heatmap: np.ndarray, gt_mask: np.ndarray) -> None:
        """Add the pixels of one image; ``gt_mask`` marks the lesion pixels."""
        heatmap, gt_mask = np.asarray(heatmap), np.asarray(gt_mask, dtype=bool)
        _same_shape(heatmap, gt_mask, "pixel AUROC")
        index = self.bins(heatmap)
        self.positive += np.bincount(index[gt_mask], minlength=self.positive.size)
        self.negative += np.bincount(index[~gt_mask], minlength=self.negative.size)

    def compute(self) -> float | None:
        """The pooled AUC, or None when no lesion or no background pixel was seen."""
        n_pos, n_neg = int(self.positive.sum()), int(self.negative.sum())
        if n_pos == 0 or n_neg == 0:
            return None
        positive, negative = self.positive.astype(np.float64), self.negative.astype(np.float64)
        negatives_below = np.cumsum(negative) - negative
        return float(np.sum(positive * (negatives_below + 0.5 * negative)) / (float(n_pos) * float(n_neg)))


def pixel_auroc(heatmaps: Iterable[np.ndarray], masks: Iterable[np.ndarray]) -> float | None:
    """ROC AUC over all pixels of the given images pooled together (see :class:`PixelAUROC`)."""
    accumulator = PixelAUROC()
    for heatmap, mask in zip(heatmaps, masks, strict=True):
        accumulator.update(heatmap, mask)
    return accumulator.compute()


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``(n, m)`` IoU matrix of two sets of ``x1, y1, x2, y2`` boxes (areas ``(x2 - x1) * (y2 - y1)``)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _predictions(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and scores as arrays, sorted by score, highest first (ties keep their order)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {scores.size} scores")
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order]


def _rsna_image_score(boxes: np.ndarray, truths: np.ndarray) -> float:
    if len(boxes) == 0 or len(truths) == 0:
        return 0.0
    overlaps = box_iou(boxes, truths)
    precisions = []
    for threshold in RSNA_IOU_THRESHOLDS:
        matched = np.zeros(len(truths), dtype=bool)
        true_positives = 0
        for row in overlaps:
            candidates = np.where(~matched & (row > threshold), row, -1.0)
            best = int(np.argmax(candidates))
            if candidates[best] > threshold:
                matched[best] = True
                true_positives += 1
        false_positives = len(boxes) - true_positives
        false_negatives = len(truths) - true_positives
        precisions.append(true_positives / (true_positives + false_positives + false_negatives))
    return float(np.mean(precisions))


def rsna_map(predictions: Sequence[tuple[np.ndarray, np.ndarray]], truths: Sequence[np.ndarray]) -> float | None:
    """Mean average precision of the RSNA Pneumonia Detection Challenge.

    For each image and each IoU threshold ``t`` in :data:`RSNA_IOU_THRESHOLDS`, predictions taken by
    descending score are matched to the unmatched truth box of highest IoU when that IoU is above
    ``t``; the image's precision at ``t`` is ``TP / (TP + FP + FN)`` and its score the mean over the
    thresholds. Images with neither truth nor prediction are skipped; predictions without truth, or
    truth without predictions, score 0. Returns the mean over scored images (None when none is).

    Args:
        predictions: per image, ``(boxes (n, 4), scores (n,))``.
        truths: per image, truth boxes ``(m, 4)``.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions but {len(truths)} truths")
    image_scores = []
    for (boxes, scores), truth in zip(predictions, truths, strict=True):
        boxes, _ = _predictions(boxes, scores)
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0 and len(truth) == 0:
            continue
        image_scores.append(_rsna_image_score(boxes, truth))
    return float(np.mean(image_scores)) if image_scores else None


def _froc_hits(boxes: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """For boxes sorted by score: True where the box centre falls in a truth box not hit before."""
    hit = np.zeros(len(truths), dtype=bool)
    is_tp = np.zeros(len(boxes), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        inside = (truths[:, 0] <= cx) & (cx < truths[:, 2]) & (truths[:, 1] <= cy) & (cy < truths[:, 3]) & ~hit
        if inside.any():
            hit[int(np.argmax(inside))] = True
            is_tp[i] = True
    return is_tp


def froc(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    truths: Sequence[np.ndarray],
    fp_rates: Sequence[float] = FROC_FP_RATES,
) -> dict | None:
    """Free-response ROC: lesion sensitivity against the average number of false positives per image.

    In each image, predictions taken by descending score are true positives when their box centre
    lies inside a truth box that no earlier prediction hit (the first such box in truth order);
    every other prediction, a second hit on the same box included, is a false positive. Each truth
    counts once. Sweeping a score threshold over all images gives the curve; false positives are
    averaged over all images (healthy ones included). The sensitivity at a rate is the highest one
    reached with at most that many false positives per image (a step function, no interpolation).
    Returns None when there is no truth box.

    Unlike ``monai.metrics.compute_froc_curve_data`` / ``compute_froc_score`` (CAMELYON16 code), the
    lowest score is kept as an operating point and sensitivities are not linearly interpolated.

    Returns:
        ``{"fp_rates", "sensitivities", "mean_sensitivity", "curve": {"fp_per_image", "sensitivity"},
        "n_truths", "n_images"}``; the curve holds the corners of the step function, from ``(0, 0)``
        to all predictions counted.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions but {len(truths)} truths")
    all_scores, all_hits, n_truths = [], [], 0
    for (boxes, scores), truth in zip(predictions, truths, strict=True):
        boxes, scores = _predictions(boxes, scores)
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        n_truths += len(truth)
        all_scores.append(scores)
        all_hits.append(_froc_hits(boxes, truth))
    if n_truths == 0:
        return None
    n_images = len(truths)
    scores, hits = np.concatenate(all_scores), np.concatenate(all_hits)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1] if scores.size else np.zeros(0, int)
    fp_per_image = np.r_[0.0, np.cumsum(~hits)[last_of_group] / n_images]
    sensitivity = np.r_[0.0, np.cumsum(hits)[last_of_group] / n_truths]
    at_rates = [float(sensitivity[fp_per_image <= rate].max()) for rate in fp_rates]
    # keep the corners of the step curve: the start, every rise in sensitivity and the end (lossless)
    corners = np.flatnonzero(np.r_[True, np.diff(sensitivity) > 0])
    corners = np.union1d(corners, [sensitivity.size - 1])
    return {
        "fp_rates": [float(rate) for rate in fp_rates],
        "sensitivities": at_rates,
        "mean_sensitivity": float(np.mean(at_rates)),
        "curve": {"fp_per_image": fp_per_image[corners].tolist(), "sensitivity": sensitivity[corners].tolist()},
        "n_truths": n_truths,
        "n_images": n_images,
    }


# -- laterality: does the map pick the half of the image that holds the lesion? ------------------------------
def _halves(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left half and the mirrored right half of ``array`` (middle column of an odd width left out), as
    contiguous float64 arrays of the same shape: a left-right symmetric array gives two identical arrays, so
    reductions over them give bit-identical results."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a rows x cols array, got shape {array.shape}")
    half = array.shape[1] // 2
    if half == 0:
        raise ValueError(f"an image {array.shape[1]} column(s) wide has no left and right halves")
    return np.ascontiguousarray(array[:, :half]), np.ascontiguousarray(array[:, ::-1][:, :half])


def truth_side(gt_mask: np.ndarray) -> str | None:
    """``"left"`` or ``"right"`` when every truth pixel lies in that half of the image, else None.

    None for an empty truth, a truth in both halves, or one that touches the middle column of an odd width.
    """
    truth = np.asarray(gt_mask, dtype=bool)
    left, mirrored_right = _halves(truth)
    in_left, in_right = bool(left.any()), bool(mirrored_right.any())
    in_middle = truth.shape[1] % 2 == 1 and bool(truth[:, truth.shape[1] // 2].any())
    if in_middle or in_left == in_right:
        return None
    return "left" if in_left else "right"


def _side_hit(left: float, right: float, side: str) -> float:
    if side not in LATERALITY_SIDES:
        raise ValueError(f"side must be one of {LATERALITY_SIDES}, got {side!r}")
    if left == right:
        return 0.5
    return float((left > right) == (side == "left"))


def brighter_than_mirror(image: np.ndarray, truth: np.ndarray) -> bool | None:
    """Whether the truth region of ``image`` is brighter on average than the same region mirrored left-right into
    the other half (the part of the mirror outside the truth); None when the truth covers its own mirror.

    On a one-sided image this says whether the lesion shows as density against the same place in the other lung:
    where it does not, no map can find the sick side by brightness at the lesion.
    """
    image, truth = np.asarray(image, dtype=np.float64), np.asarray(truth, dtype=bool)
    if image.shape != truth.shape:
        raise ValueError(f"image {image.shape} and truth {truth.shape} must have the same shape")
    mirror = truth[:, ::-1] & ~truth
    if not truth.any() or not mirror.any():
        return None
    return bool(image[truth].mean() > image[mirror].mean())


def laterality_mass(heatmap: np.ndarray, side: str) -> float:
    """1.0 when the half of the map holding more heat mass (sum of its values) is ``side``, 0.0 when it is the
    other half, 0.5 on an exact tie (any left-right symmetric map).

    The halves have the same number of pixels, so adding a constant to the map does not change the answer
    (maps need not be non-negative).
    """
    left, mirrored_right = _halves(heatmap)
    if not (np.all(np.isfinite(left)) and np.all(np.isfinite(mirrored_right))):
        raise ValueError("maps must be finite")
    return _side_hit(float(left.sum()), float(mirrored_right.sum()), side)


def laterality_peak(heatmap: np.ndarray, side: str) -> float:
    """1.0 when the half whose maximum is larger is ``side``, 0.0 when it is the other half, 0.5 when both halves
    reach the same maximum (any left-right symmetric map; a peak on the middle column of an odd width is
    judged by the halves' own maxima)."""
    left, mirrored_right = _halves(heatmap)
    if not (np.all(np.isfinite(left)) and np.all(np.isfinite(mirrored_right))):
        raise ValueError("maps must be finite")
    return _side_hit(float(left.max()), float(mirrored_right.max()), side)


def mean_interval(values: Sequence[float], resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                  ) -> list[float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (items resampled with replacement); None when
    empty."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return None
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples} and {confidence}")
    draws = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    tail = (1 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(values[draws].mean(1), [tail, 100 - tail])]


def laterality_summary(mass: Sequence[float], peak: Sequence[float], sides: Sequence[str], resamples: int = 2000,
                       confidence: float = 0.95, seed: int = 0) -> dict:
    """Laterality over the unilateral disease images (one entry per image), beside its floors.

    Returns ``{"images", "left", "right", "majority_side", "majority_floor", "symmetric_floor", "laterality_mass",
    "laterality_mass_interval", "laterality_peak", "laterality_peak_interval", "resamples", "confidence"}``:
    ``majority_floor`` is what always answering the commoner side scores, ``symmetric_floor`` (0.5) what any
    left-right symmetric map scores; intervals are percentile bootstraps over the images. Values are None when
    there is no unilateral image.
    """
    if not len(mass) == len(peak) == len(sides):
        raise ValueError(f"{len(mass)} mass, {len(peak)} peak values but {len(sides)} sides")
    if any(side not in LATERALITY_SIDES for side in sides):
        raise ValueError(f"sides must be in {LATERALITY_SIDES}")
    count = len(sides)
    left = sum(side == "left" for side in sides)
    summary = {"images": count, "left": left, "right": count - left,
               "majority_side": None if not count else "left" if left >= count - left else "right",
               "majority_floor": max(left, count - left) / count if count else None, "symmetric_floor": 0.5,
               "resamples": resamples, "confidence": confidence}
    for name, values in (("laterality_mass", mass), ("laterality_peak", peak)):
        summary[name] = float(np.mean(values)) if count else None
        summary[f"{name}_interval"] = mean_interval(values, resamples, confidence, seed)
    return summary
