"""Paired comparison of two methods scored on the same images: is a difference larger than chance?

Two lesion maps evaluated on one split differ by a few hits of the pointing game or a few thousandths of
AUC; whether that is evidence depends on how often they disagree image by image. :func:`paired_comparison`
aligns two methods' per-image rows (``per_image.csv`` of ``pilletgan evaluate``, or the rows its
accumulators keep) by image key and reports, for each headline metric, both values, their difference and a
paired bootstrap interval of the difference (images resampled, disease and healthy images separately, so
every resample has both classes); for the pointing game and laterality also the images only one method gets
right and the exact McNemar p-value of that split (for laterality, whose per-image values include 0.5 for a tie,
the images where one method scores higher: the exact sign test, McNemar's test for binary hits). Detection AUC
leaves out localization-only images; laterality is compared over the images whose truth lies in one half, and again
over each of :data:`~PilletGANLib.evaluation.accumulator.LATERALITY_SUBSETS` of them: beyond density, where the
image's own grey levels lean to the healthy half (reports scored with the ``grey_level`` floor), and faint, where the
opacity is no brighter than the same place in the other half.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, DataError
from ..metrics import detection_auc
from .accumulator import LATERALITY_SUBSETS, ImageScores

__all__ = ["PAIRED_METRICS", "mcnemar_exact_p", "paired_comparison", "read_per_image"]

#: Per-image metrics compared over the images both methods localize (with truth), besides detection AUC, and the
#: per-image field each is the mean of.
PAIRED_METRICS = {"pointing_game": "pointing_hit", "dice_top15": "dice_top15", "dice": "dice"}
#: Per-image metrics compared over the images whose truth lies in one half of the image (``truth_side``).
PAIRED_LATERALITY = ("laterality_mass", "laterality_peak")
#: Metrics whose comparison reports the images only one method gets right and the exact McNemar p-value.
_DISCORDANCE = ("pointing_game", *PAIRED_LATERALITY)


def read_per_image(path: str | os.PathLike) -> list[ImageScores]:
    """The rows of a ``per_image.csv`` written by ``pilletgan evaluate``; a cell no report holds (a score that is not
    finite, a Dice outside [0, 1], a hit other than 0 or 1) is refused naming its line and column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.DictReader(handle))
    except OSError as err:
        raise DataError(f"cannot read the per-image table ({err.strerror})", path) from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"not a per-image table of pilletgan evaluate ({type(err).__name__}: {err})", path) from err
    if not table:
        raise DataError("the per-image table has no rows", path)
    rows = []
    for line, row in enumerate(table, start=2):
        try:
            rows.append(_image_scores(row))
        except (KeyError, ValueError) as err:
            raise DataError(f"not a per-image table of pilletgan evaluate: line {line}: {err.args[0]}", path) from err
    return rows


def _image_scores(row: dict[str, str | None]) -> ImageScores:
    """One row's cells, each read and checked (the localization-only and laterality columns are absent from reports
    older than them)."""

    def cell(column: str, kind: str, required: bool = False) -> Any:
        if column not in row and required:
            raise KeyError(f"no column '{column}'")
        text = row.get(column)
        if text in ("", None):
            if required:
                raise ValueError(f"'{column}' is empty")
            return None
        if kind == "text":
            return text
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"'{column}' is {text[:40]!r}, not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"'{column}' is {text[:40]}, not a finite number")
        if kind == "count":
            if value < 0 or value != int(value):
                raise ValueError(f"'{column}' is {text[:40]}, not a count")
            return int(value)
        if kind == "flag":
            if value not in (0, 1):
                raise ValueError(f"'{column}' is {text[:40]}; expected 0 or 1")
            return bool(value)
        if kind == "unit" and not 0 <= value <= 1:
            raise ValueError(f"'{column}' is {text[:40]}; expected a value within [0, 1]")
        return value

    side = cell("truth_side", "text")
    if side not in (None, "left", "right"):
        raise ValueError(f"'truth_side' is {side[:40]!r}; expected left, right or empty")
    return ImageScores(key=cell("key", "text", True), image=cell("image", "text", True),
                       label=cell("label", "text", True), score=cell("score", "number", True),
                       pointing_hit=cell("pointing_hit", "flag"), dice=cell("dice", "unit"),
                       dice_top15=cell("dice_top15", "unit"), iou=cell("iou", "unit"),
                       n_boxes_pred=cell("n_boxes_pred", "count", True), n_boxes_true=cell("n_boxes_true", "count", True),
                       localization_only=bool(cell("localization_only", "flag")), truth_side=side,
                       laterality_mass=cell("laterality_mass", "unit"), laterality_peak=cell("laterality_peak", "unit"),
                       **{s.flag: cell(s.flag, "flag") for s in LATERALITY_SUBSETS.values()})


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs split ``a_only : b_only`` under a fair coin."""
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(samples, [tail, 100 - tail])]


def _aligned(rows_a: Sequence[ImageScores], rows_b: Sequence[ImageScores]) -> list[tuple[ImageScores, ImageScores]]:
    keys_a, by_key = {row.key for row in rows_a}, {row.key: row for row in rows_b}
    if len(keys_a) != len(rows_a) or len(by_key) != len(rows_b):
        raise DataError("an image key appears twice in a per-image table; a paired comparison needs one row each")
    if keys_a != set(by_key):
        raise DataError(f"the two methods were scored on different images ({len(keys_a - set(by_key))} only in the "
                        f"first, {len(set(by_key) - keys_a)} only in the second)")
    pairs = [(row, by_key[row.key]) for row in rows_a]
    mismatched = [a.key for a, b in pairs if (a.label, a.localization_only) != (b.label, b.localization_only)]
    if mismatched:
        raise DataError(f"{len(mismatched)} images have different labels in the two tables, e.g. '{mismatched[0]}'")
    sides = [a.key for a, b in pairs if a.truth_side != b.truth_side]
    if sides:
        raise DataError(f"{len(sides)} images have different truth in the two tables (truth_side), e.g. '{sides[0]}'")
    for flag in (subset.flag for subset in LATERALITY_SUBSETS.values()):
        differing = [a.key for a, b in pairs if None not in (getattr(a, flag), getattr(b, flag))
                     and getattr(a, flag) != getattr(b, flag)]
        if differing:
            raise DataError(f"{len(differing)} images have different grey levels in the two tables ({flag}), "
                            f"e.g. '{differing[0]}': were the same images scored?")
    return pairs


def paired_comparison(rows_a: Sequence[ImageScores], rows_b: Sequence[ImageScores], resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Method A against method B on the same images (A minus B); see the module docstring.

    Returns ``{"images", "localized", "lateral", "misled", "faint", "resamples", "confidence", "detection_auc",
    "pointing_game", "dice_top15", "dice", "laterality_mass", "laterality_peak", "laterality_mass_beyond_density",
    "laterality_peak_beyond_density", "laterality_mass_faint", "laterality_peak_faint"}``: each metric ``{"a", "b",
    "difference", "interval"}`` (None where the data cannot give it; the interval is the paired bootstrap's),
    ``pointing_game`` and the laterality metrics also ``{"a_only", "b_only", "mcnemar_p"}``. ``misled`` and ``faint``
    count the images of the beyond-density and faint rows (None when a table lacks that flag: no grey-level floor,
    or predictions without their images).
    """
    if resamples < 1:
        raise ConfigurationError(f"resamples must be >= 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be between 0 and 1, got {confidence}")
    pairs = _aligned(rows_a, rows_b)
    if not pairs:
        raise DataError("no images to compare")
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {"images": len(pairs), "resamples": resamples, "confidence": confidence}

    detected = [(a, b) for a, b in pairs if not a.localization_only]
    positive = np.array([a.label == "disease" for a, _ in detected], dtype=bool)
    result["detection_auc"] = None
    if 0 < positive.sum() < positive.size:
        scores = np.array([[a.score, b.score] for a, b in detected])
        pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
        samples = np.empty(resamples)
        for i in range(resamples):
            index = np.concatenate([rng.choice(pos_idx, pos_idx.size), rng.choice(neg_idx, neg_idx.size)])
            samples[i] = detection_auc(scores[index, 0], positive[index]) - detection_auc(scores[index, 1],
                                                                                          positive[index])
        auc_a, auc_b = detection_auc(scores[:, 0], positive), detection_auc(scores[:, 1], positive)
        result["detection_auc"] = {"a": auc_a, "b": auc_b, "difference": auc_a - auc_b,
                                   "interval": _interval(samples, confidence)}

    localized = [(a, b) for a, b in pairs if a.pointing_hit is not None and b.pointing_hit is not None]
    result["localized"] = len(localized)
    draws = rng.integers(0, len(localized), size=(resamples, len(localized))) if localized else None
    for metric, name in PAIRED_METRICS.items():
        result[metric] = _paired_means(localized, name, draws, metric in _DISCORDANCE, confidence)
    lateral = [(a, b) for a, b in pairs if a.truth_side is not None]
    result["lateral"] = len(lateral)
    draws = rng.integers(0, len(lateral), size=(resamples, len(lateral))) if lateral else None
    for metric in PAIRED_LATERALITY:
        result[metric] = _paired_means(lateral, metric, draws, True, confidence)
    for name, subset in LATERALITY_SUBSETS.items():
        flagged = bool(lateral) and all(getattr(a, subset.flag) is not None and getattr(b, subset.flag) is not None
                                        for a, b in lateral)
        chosen = [(a, b) for a, b in lateral if getattr(a, subset.flag)] if flagged else []
        result[subset.count] = len(chosen) if flagged else None
        draws = rng.integers(0, len(chosen), size=(resamples, len(chosen))) if chosen else None
        for metric in PAIRED_LATERALITY:
            result[f"{metric}_{name}"] = _paired_means(chosen, metric, draws, True, confidence)
    return result


def _paired_means(pairs: Sequence[tuple[ImageScores, ImageScores]], name: str, draws: np.ndarray | None,
                  discordance: bool, confidence: float) -> dict[str, Any] | None:
    """Means of the per-image field ``name`` of both methods, their difference and its bootstrap interval over
    ``draws``; with ``discordance`` also the images where one method scores higher and McNemar's p."""
    values = [(getattr(a, name), getattr(b, name)) for a, b in pairs]
    if not values or any(v is None for pair in values for v in pair):
        return None
    table = np.asarray(values, dtype=np.float64)
    difference = table[:, 0] - table[:, 1]
    entry = {"a": float(table[:, 0].mean()), "b": float(table[:, 1].mean()),
             "difference": float(difference.mean()), "interval": _interval(difference[draws].mean(1), confidence)}
    if discordance:
        a_only, b_only = int((difference > 0).sum()), int((difference < 0).sum())
        entry.update(a_only=a_only, b_only=b_only, mcnemar_p=mcnemar_exact_p(a_only, b_only))
    return entry
