"""The evaluation harness: one pass over a dataset scores a method and the floor maps with the same code.

Outputs in ``out_dir``: ``metrics.json``, ``per_image.csv``, ``roc.png``, ``froc.png``,
``overlays.png`` and ``index.html``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from ..data.manifest import ManifestRecord
from ..errors import DataError
from ..metrics import brighter_than_mirror
from ..reading import load_cxr
from .accumulator import LATERALITY_SUBSETS, ImageScores, MetricAccumulator, box_arrays, truth_mask
from .figures import plot_froc, plot_overlays, plot_roc
from .floors import FLOORS, MODEL_PRIOR_FLOOR, floor_prediction, grey_level_map, prediction_from_map
from .overlays import OverlayPanel, OverlaySelector, make_panel
from .paired import paired_comparison
from .report import PerImageCSV, write_index, write_json

__all__ = ["PredictionLike", "evaluate", "ranking_map"]

logger = logging.getLogger(__name__)

_FIGURES = (
    ("roc.png", "Detection ROC curve of the model and the floors"),
    ("froc.png", "FROC curve of the model and the floors"),
    ("overlays.png", "Best, worst and random disease images by Dice (top 15 %): map, truth (green), prediction (red)"),
)


class PredictionLike(Protocol):
    """What ``predict(record)`` returns (:class:`~PilletGANLib.inference.LesionResult` or a saved map).

    ``heatmap`` is ``rows x cols`` in the source grid (higher = more likely lesion; an optional unclipped
    ``difference`` of the same shape is ranked instead, see :func:`ranking_map`); ``mask`` a boolean
    array of the same shape or None (no mask metrics); ``boxes`` objects or mappings with ``x1, y1,
    x2, y2, score`` in source pixels. An ``image`` attribute, when present, is used for the overlays and the
    ``grey_level`` floor (not scored when a prediction has none).
    """

    heatmap: np.ndarray
    score: float
    mask: np.ndarray | None
    boxes: Sequence[Any]


def _checked_arrays(result: PredictionLike, record: ManifestRecord) -> tuple[np.ndarray, np.ndarray | None]:
    heatmap = np.asarray(result.heatmap)
    image = getattr(result, "image", None)
    if heatmap.ndim != 2:
        raise DataError(f"the lesion map has shape {heatmap.shape}; expected rows x cols", record.image)
    if image is not None and np.shape(image) != heatmap.shape:
        raise DataError(f"the lesion map is {heatmap.shape} but the image is {np.shape(image)} (rows x cols)", record.image)
    if not np.all(np.isfinite(heatmap)):
        raise DataError("the lesion map holds NaN or infinite values", record.image)
    if not np.isfinite(float(result.score)):
        raise DataError(f"the detection score is {result.score}", record.image)
    mask = None if result.mask is None else np.asarray(result.mask, dtype=bool)
    if mask is not None and mask.shape != heatmap.shape:
        raise DataError(f"the lesion mask is {mask.shape} but the map is {heatmap.shape}", record.image)
    return heatmap, mask


def ranking_map(result: PredictionLike, heatmap: np.ndarray | None = None, where: Any = None) -> np.ndarray:
    """The map the ranking metrics (pointing game, ``dice_top15``, pixel AUROC, laterality) and the sanity checks
    read: a prediction's unclipped ``difference`` when it has one (a :class:`~PilletGANLib.inference.LesionResult`,
    whose heat map saturates at 1, and a saturated plateau has no single peak), else its ``heatmap``. ``where``
    names the image in errors."""
    heatmap = np.asarray(result.heatmap) if heatmap is None else heatmap
    difference = getattr(result, "difference", None)
    if difference is None:
        return heatmap
    difference = np.asarray(difference, dtype=np.float32)
    if difference.shape != heatmap.shape or not np.all(np.isfinite(difference)):
        raise DataError(f"the lesion map's difference is {difference.shape} or not finite; the heat map is "
                        f"{heatmap.shape}", where)
    return difference


def _panel(record: ManifestRecord, result: PredictionLike, heatmap: np.ndarray, boxes: np.ndarray,
           row: ImageScores) -> OverlayPanel:
    image = getattr(result, "image", None)
    if image is None:
        image, _ = load_cxr(record.image)
    caption = f"{record.key}\nDice15 {row.dice_top15:.2f}, {'hit' if row.pointing_hit else 'miss'}, score {row.score:.3g}"
    return make_panel(record.key, image, heatmap, record.boxes, boxes, caption)


def _counts(records: Sequence[ManifestRecord], model: MetricAccumulator) -> dict[str, int]:
    return {
        "images": len(records),
        "healthy": sum(not r.is_disease for r in records),
        "disease": sum(r.is_disease for r in records),
        "localization_only": sum(r.localization_only for r in records),
        "with_boxes": sum(len(r.boxes) > 0 for r in records),
        "with_masks": sum(r.mask is not None for r in records),
        "localized": len(model.localized),
        "unilateral": sum(row.truth_side is not None for row in model.rows),
    }


def evaluate(
    records: Sequence[ManifestRecord],
    predict: Callable[[ManifestRecord], PredictionLike],
    out_dir: str | os.PathLike,
    *,
    model_info: Mapping[str, Any],
    data_info: Mapping[str, Any],
    floors: bool = True,
    progress: bool = True,
    overlays_per_group: int = 4,
    seed: int = 0,
    sanity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``predict`` over ``records`` (and the floor maps when ``floors``) and write the report.

    Detection AUC uses every image but the localization-only ones; pointing game, pixel AUROC, Dice, IoU and
    ``dice_top15`` use the disease images with truth (pixel mask, else boxes), localization-only ones included;
    laterality those of them whose truth lies in one half of the image; RSNA mAP and FROC use every image's boxes
    but the localization-only ones. ``sanity`` (:func:`~PilletGANLib.evaluation.sanity.sanity_report`, or why there
    is none) is reported as given.
    With the ``grey_level`` floor, ``laterality["beyond_density"]`` is the map's laterality over the one-sided
    images where the radiograph's own grey levels put more mass on the healthy half (density alone misleads there);
    when the predictions carry their images, ``laterality["faint"]`` the same over the one-sided images whose opacity
    is no brighter than the same place in the other half.
    Returns the content of ``metrics.json``: the metrics, ``counts``, ``model``, ``data`` and ``floors``; when
    the results carry the model's location prior, also ``vs_model_prior``: the model against that prior alone,
    image by image (:func:`~PilletGANLib.evaluation.paired.paired_comparison`, model minus prior), which says
    whether the map adds anything to where lesions usually are.

    Memory stays bounded on large datasets: each full-resolution map is dropped after its image is
    scored; the pixel AUROC is accumulated in a fixed-size histogram (exact up to ties within about
    0.05 % of a value, see :class:`~PilletGANLib.metrics.PixelAUROC`); only the overlay grid's
    thumbnails (at most 256 px) are kept.
    """
    if not records:
        raise DataError("no images to evaluate")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = MetricAccumulator()
    floor_scores = {name: MetricAccumulator() for name in FLOORS} if floors else {}
    prior_scores = MetricAccumulator()  # the model's own location prior alone, when its results carry one
    selector = OverlaySelector(per_group=overlays_per_group, seed=seed)
    with PerImageCSV(out_dir / "per_image.csv") as table:
        for record in tqdm(records, desc="evaluate", unit="image", disable=not progress):
            result = predict(record)
            heatmap, mask = _checked_arrays(result, record)
            truth = truth_mask(record, heatmap.shape)
            boxes, box_scores = box_arrays(result.boxes if result.boxes is not None else [])
            row = model.add(record, ranking_map(result, heatmap, record.image), float(result.score), mask, boxes,
                            box_scores, truth)
            image = getattr(result, "image", None)
            if image is not None and row.truth_side is not None and np.shape(image) == heatmap.shape:
                brighter = brighter_than_mirror(grey_level_map(image), truth)
                row.faint_opacity = None if brighter is None else not brighter
            if image is None and floor_scores.pop("grey_level", None) is not None:
                logger.info("%s: a prediction without its image: the grey_level floor is not scored", record.key)
            for name, accumulator in floor_scores.items():
                floor = floor_prediction(name, heatmap.shape, record.key, image=image)
                floor_row = accumulator.add(record, floor.heatmap, floor.score, floor.mask, floor.boxes,
                                            floor.box_scores, truth)
                if name == "grey_level" and row.truth_side is not None:
                    row.density_misleads = floor_row.laterality_mass == 0
            table.write(row)
            location_prior = getattr(result, "location_prior", None)
            if floors and location_prior is not None:
                floor = prediction_from_map(np.asarray(location_prior, dtype=np.float64))
                prior_scores.add(record, floor.heatmap, floor.score, floor.mask, floor.boxes, floor.box_scores, truth)
            if truth is not None:
                selector.offer(row.dice_top15, functools.partial(_panel, record, result, heatmap, boxes, row))

    if prior_scores.labels:
        floor_scores[MODEL_PRIOR_FLOOR] = prior_scores
    metrics: dict[str, Any] = {
        **model.results(),
        "counts": _counts(records, model),
        "model": dict(model_info),
        "data": dict(data_info),
        "floors": {name: accumulator.results() for name, accumulator in floor_scores.items()},
        "sanity": dict(sanity) if sanity is not None else None,
    }
    for name, subset in LATERALITY_SUBSETS.items():
        if any(getattr(row, subset.flag) is not None for row in model.rows):
            metrics["laterality"][name] = model.laterality_where(subset.flag, seed=seed)
    if prior_scores.labels:
        metrics["vs_model_prior"] = paired_comparison(model.rows, prior_scores.rows, seed=seed)
    methods = {"model": model, **floor_scores}
    aucs = {"model": metrics["detection_auc"], **{n: m["detection_auc"] for n, m in metrics["floors"].items()}}
    plot_roc({name: (acc.scores, acc.labels, aucs[name]) for name, acc in methods.items()}, out_dir / "roc.png")
    plot_froc({"model": metrics["froc"], **{n: m["froc"] for n, m in metrics["floors"].items()}}, out_dir / "froc.png")
    plot_overlays(selector.panels(), out_dir / "overlays.png")
    write_json(metrics, out_dir / "metrics.json")
    write_index(metrics, _FIGURES, out_dir / "index.html")
    logger.info("evaluated %d images: %s", len(records),
                ", ".join(f"{k}={metrics[k]:.3f}" for k in ("detection_auc", "pointing_game", "dice_top15", "rsna_map",
                                                            "laterality_mass") if metrics[k] is not None))
    return metrics
