"""Sanity checks of a lesion map (Adebayo et al. 2018, "Sanity checks for saliency maps").

A map that shows what the network read in *this* image must change when the image changes and when the network
forgets what it learned. :func:`sanity_report` reruns a predictor on a seeded subset of images, disease images
first, and correlates each image's map (the unclipped map the evaluation ranks, :func:`~.harness.ranking_map`) with

- the map of the same image with its grey levels inverted: the network input negated inside the image (padding
  keeps its value), everything else the same (model, gates, priors, geometry);
- the map of the same image from the same predictor whose network has randomized weights (every layer
  re-initialized with a fixed seed; every member of an ensemble).

Correlations near 1 say the map shows where lesions usually are (a location prior, a gate) or the image's own
structure, not evidence the network found. Saved maps cannot be rerun: :data:`SANITY_NOT_FOR_MAPS`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from ..data.manifest import ManifestRecord
from ..reading import load_cxr
from ..transforms.pipeline import PreparedImage, prepare_image
from .harness import ranking_map

__all__ = ["DEFAULT_SANITY_IMAGES", "SANITY_NOT_FOR_MAPS", "RerunnablePredictor", "grey_inverted", "map_correlations",
           "randomized_network", "sanity_images", "sanity_report"]

logger = logging.getLogger(__name__)

#: Images :func:`sanity_report` uses unless told otherwise.
DEFAULT_SANITY_IMAGES = 50
#: Why a report of saved maps has no sanity checks.
SANITY_NOT_FOR_MAPS = ("the sanity checks rerun the model on a grey-inverted image and with randomized weights; "
                       "saved maps (--maps) cannot be rerun")
#: Maps larger than this many pixels on a side are correlated on a strided grid of at most this side.
_CORRELATION_SIDE = 512


class RerunnablePredictor(Protocol):
    """What the sanity checks need of a predictor (:class:`~PilletGANLib.inference.Predictor` and the classifier
    baseline's predictor have it)."""

    image_size: int
    margin: float
    batch_size: int

    @property
    def network(self) -> torch.nn.Module: ...

    def with_network(self, network: torch.nn.Module) -> RerunnablePredictor: ...

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[Any]: ...


def sanity_images(records: Sequence[ManifestRecord], count: int = DEFAULT_SANITY_IMAGES, seed: int = 0
                  ) -> list[ManifestRecord]:
    """``count`` records: the disease images in a seeded random order, then the healthy ones likewise."""
    if count < 1:
        raise ValueError(f"the sanity checks need at least one image, got {count}")
    rng = np.random.default_rng(seed)
    disease = [r for r in records if r.is_disease]
    healthy = [r for r in records if not r.is_disease]
    ordered = [disease[i] for i in rng.permutation(len(disease))] + [healthy[i] for i in rng.permutation(len(healthy))]
    return ordered[:count]


def grey_inverted(prepared: PreparedImage) -> PreparedImage:
    """The same prepared image with the network input negated inside the image (padding keeps its value)."""
    valid = torch.from_numpy(prepared.geometry.valid_mask()).to(prepared.network_input.device)
    network_input = torch.where(valid, -prepared.network_input, prepared.network_input)
    return PreparedImage(prepared.image, prepared.meta, network_input, prepared.geometry)


def randomized_network(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``network`` with every weight re-initialized: each layer by its own ``reset_parameters`` (PyTorch's
    default initializers, running statistics cleared), any parameter no layer initializes (e.g. an attention fusion
    weight) drawn from a standard normal. The global random state is left as it was."""
    twin = copy.deepcopy(network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        covered: set[int] = set()
        for module in twin.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in module.parameters(recurse=False))
            reset_stats = getattr(module, "reset_running_stats", None)
            if callable(reset_stats):
                reset_stats()
        with torch.no_grad():
            for parameter in twin.parameters():
                if id(parameter) not in covered:
                    parameter.normal_()
    return twin


def map_correlations(first: np.ndarray, second: np.ndarray) -> tuple[float | None, float | None]:
    """``(Spearman, Pearson)`` correlation of two maps of one shape over their pixels; None where a map is constant.

    Maps with a side above 512 pixels are read on a strided grid (every ``ceil(side / 512)``-th pixel).
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"maps of different shapes: {first.shape} and {second.shape}")
    step = max(1, math.ceil(max(first.shape) / _CORRELATION_SIDE))
    a, b = first[::step, ::step].ravel(), second[::step, ::step].ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    return float(stats.spearmanr(a, b).statistic), float(np.corrcoef(a, b)[0, 1])


def _median(values: Sequence[float | None]) -> tuple[float | None, int]:
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return (float(np.median(defined)) if defined else None), len(defined)


def sanity_report(predictor: RerunnablePredictor, records: Sequence[ManifestRecord],
                  count: int = DEFAULT_SANITY_IMAGES, seed: int = 0, randomization_seed: int = 0,
                  progress: bool = True) -> dict[str, Any]:
    """Rerun ``predictor`` on :func:`sanity_images` of ``records``: each image's map against the map of its grey-
    inverted twin and against the map of a randomized copy of the network (see the module docstring).

    Returns ``{"available": True, "images", "disease", "seed", "randomization_seed", "inverted": {"spearman_median",
    "pearson_median", "defined", "constant"}, "randomized": {...}, "seconds", "per_image": [...]}``; ``defined``
    counts the images whose correlation exists (neither map constant), ``constant`` those whose map became constant
    (a map that vanishes when the weights are randomized passes that check). Costs three predictions per image.
    """
    chosen = sanity_images(records, count, seed)
    started = time.perf_counter()
    randomized = predictor.with_network(randomized_network(predictor.network, randomization_seed))
    rows = []
    bar = tqdm(total=len(chosen), desc="sanity checks", unit="image", disable=not progress)
    for start in range(0, len(chosen), predictor.batch_size):
        batch = chosen[start: start + predictor.batch_size]
        prepared = [prepare_image(*load_cxr(r.image), predictor.image_size, predictor.margin) for r in batch]
        original = predictor.predict_prepared(prepared)
        inverted = predictor.predict_prepared([grey_inverted(p) for p in prepared])
        scrambled = randomized.predict_prepared(prepared)
        for record, base, inv, rnd in zip(batch, original, inverted, scrambled, strict=True):
            reference = ranking_map(base, where=record.image)
            row: dict[str, Any] = {"key": record.key, "label": record.label}
            for check, result in (("inverted", inv), ("randomized", rnd)):
                changed = ranking_map(result, where=record.image)
                row[f"{check}_spearman"], row[f"{check}_pearson"] = map_correlations(reference, changed)
                row[f"{check}_constant"] = bool(np.ptp(changed) == 0)
            rows.append(row)
        bar.update(len(batch))
    bar.close()
    report: dict[str, Any] = {"available": True, "images": len(rows), "disease": sum(r.is_disease for r in chosen),
                              "seed": seed, "randomization_seed": randomization_seed}
    for check in ("inverted", "randomized"):
        spearman, defined = _median([row[f"{check}_spearman"] for row in rows])
        pearson, _ = _median([row[f"{check}_pearson"] for row in rows])
        report[check] = {"spearman_median": spearman, "pearson_median": pearson, "defined": defined,
                         "constant": sum(row[f"{check}_constant"] for row in rows)}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["per_image"] = rows
    logger.info("sanity checks on %d images in %.0f s: median Spearman with the grey-inverted image's map %s, with the "
                "randomized network's map %s", len(rows), report["seconds"], report["inverted"]["spearman_median"],
                report["randomized"]["spearman_median"])
    return report
