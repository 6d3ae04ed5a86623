"""Does the healed twin heal? A PILLET-GAN model's healed twins read by an independent classifier.

The lesion map is the difference between an image and its healed twin, so the map can only be as image-specific as
the twin is a counterfactual of the lesion. For every image this check records the classifier's logit on the network
input, on the healed twin (mirror-averaged when the model's recipe averages the mirrored pass in), and on the input
with its left or right half, split at the source image's midline, replaced by the twin or, as the GAN-free control,
by the mirrored input. The summary says:

- whether the twins of diseased images look healthy: the classifier's AUC on the inputs and on the twins, and the
  share of diseased twins scored under the healthy images' median input logit;
- whether the healing knows the side: over the disease images whose truth lies in one half, how often healing the
  sick half lowers the logit more than healing the other half, beside the same decision made with mirrors.

The classifier must share the model's preprocessing (image size and intensity margin), as the baseline trained by
``pilletgan model train-classifier --set image_size=... --set margin=...`` does.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data.manifest import ManifestRecord
from ..errors import ConfigurationError, PilletGANError
from ..inference.reading_workers import prepared_batches
from ..metrics import detection_auc, mean_interval, truth_side
from ..transforms.pipeline import PreparedImage
from .accumulator import truth_mask
from .report import atomic_output

__all__ = ["HALF_VARIANTS", "HealingRow", "healing_rows", "healing_summary", "left_half_masks", "side_hit",
           "write_healing_csv"]

logger = logging.getLogger(__name__)

#: The half replacements, each for the left and the right half of the image.
HALF_VARIANTS = ("heal", "mirror")


@dataclass
class HealingRow:
    """The classifier's logits for one image (``truth_side``: ``left``/``right`` when its truth lies in one half)."""

    key: str
    label: str
    truth_side: str | None
    input_logit: float
    twin_logit: float
    heal_left: float
    heal_right: float
    mirror_left: float
    mirror_right: float


def left_half_masks(prepared: Sequence[PreparedImage]) -> torch.Tensor:
    """``(B, 1, 1, N)`` float masks of the network columns whose centre lies left of each source image's midline."""
    size = prepared[0].network_input.shape[-1]
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    midlines = [float(p.geometry.points_to_network(np.array([p.geometry.cols / 2.0, 0.0]))[0]) for p in prepared]
    return torch.stack([(centres < midline).float() for midline in midlines])[:, None, None, :]


def side_hit(row: HealingRow, variant: str) -> float:
    """1.0 when replacing the sick half by ``variant`` lowers the logit more than replacing the other half, 0.0 when
    less, 0.5 on a tie; the row must have a ``truth_side``."""
    if variant not in HALF_VARIANTS or row.truth_side not in ("left", "right"):
        raise ValueError(f"need a variant in {HALF_VARIANTS} and a one-sided row, got {variant!r}, {row.truth_side!r}")
    drop = {side: row.input_logit - getattr(row, f"{variant}_{side}") for side in ("left", "right")}
    other = "right" if row.truth_side == "left" else "left"
    return 0.5 if drop[row.truth_side] == drop[other] else float(drop[row.truth_side] > drop[other])


def _logits(network: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return network(images).float().reshape(images.shape[0], -1)[:, 0].cpu()


@torch.no_grad()
def healing_rows(predictor: Any, classifier: Any, records: Sequence[ManifestRecord], batch_size: int = 16,
                 num_workers: int = 0, progress: bool = False) -> list[HealingRow]:
    """One :class:`HealingRow` per readable record; a file the reader rejects is logged and left out.

    ``predictor`` is a PilletGAN :class:`~PilletGANLib.inference.Predictor`, ``classifier`` a
    :class:`~PilletGANLib.inference.classifier.ClassifierPredictor` with the same preprocessing.
    """
    if (predictor.image_size, predictor.margin) != (classifier.image_size, classifier.margin):
        raise ConfigurationError(
            f"the classifier reads {classifier.image_size} px images with margin {classifier.margin}, the model "
            f"{predictor.image_size} px with margin {predictor.margin}: train the classifier with the model's "
            "image_size and margin")
    by_path = {str(Path(record.image)): record for record in records}
    rows: list[HealingRow] = []
    batches = prepared_batches([Path(record.image) for record in records], predictor.image_size, predictor.margin,
                               batch_size, num_workers)
    with tqdm(total=len(records), desc="healing check", unit="image", disable=not progress) as bar:
        for batch in batches:
            bar.update(len(batch))
            for path, outcome in batch:
                if isinstance(outcome, PilletGANError):
                    logger.warning("%s: left out of the healing check: %s", path, outcome)
            items = [(by_path[str(Path(path))], item) for path, item in batch if isinstance(item, PreparedImage)]
            if items:
                rows.extend(_batch_rows(predictor, classifier, items))
    return rows


def _batch_rows(predictor: Any, classifier: Any, items: list[tuple[ManifestRecord, PreparedImage]]
                ) -> list[HealingRow]:
    prepared = [item for _, item in items]
    images = torch.stack([p.network_input for p in prepared]).to(predictor.device)
    twin = predictor.translate(images)[0]
    mirrored = predictor.localizer.mirrored_healing(lambda batch: predictor.translate(batch)[0], images)
    if mirrored is not None:
        twin = (twin + mirrored.to(twin.device)) / 2
    left = left_half_masks(prepared).to(images.device)
    right, flipped = 1.0 - left, images.flip(-1)
    network = classifier.network  # in eval mode: the classifier predictor puts it there
    variants = {"input_logit": images, "twin_logit": twin,
                "heal_left": images * right + twin * left, "heal_right": images * left + twin * right,
                "mirror_left": images * right + flipped * left, "mirror_right": images * left + flipped * right}
    logits = {name: _logits(network, batch.to(classifier.device)) for name, batch in variants.items()}
    rows = []
    for index, (record, item) in enumerate(items):
        truth = truth_mask(record, (item.geometry.rows, item.geometry.cols))
        rows.append(HealingRow(key=record.key, label=record.label,
                               truth_side=None if truth is None else truth_side(truth),
                               **{name: float(values[index]) for name, values in logits.items()}))
    return rows


def healing_summary(rows: Sequence[HealingRow], resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                    ) -> dict[str, Any]:
    """What the rows say (values None where the images needed are missing); intervals are percentile bootstraps."""
    labels = [row.label == "disease" for row in rows]
    disease = [row for row in rows if row.label == "disease"]
    healthy = [row.input_logit for row in rows if row.label != "disease"]
    healthy_median = float(np.median(healthy)) if healthy else None
    lateral = [row for row in disease if row.truth_side is not None]
    summary: dict[str, Any] = {
        "images": len(rows), "disease": len(disease), "healthy": len(healthy),
        "auc_input": detection_auc([r.input_logit for r in rows], labels),
        "auc_twin": detection_auc([r.twin_logit for r in rows], labels),
        "healthy_median_input_logit": healthy_median,
        "disease_twins_below_healthy_median": None if healthy_median is None or not disease
        else float(np.mean([r.twin_logit < healthy_median for r in disease])),
        "disease_logit_falls": float(np.mean([r.twin_logit < r.input_logit for r in disease])) if disease else None,
        "one_sided": len(lateral), "resamples": resamples, "confidence": confidence,
    }
    for variant in HALF_VARIANTS:
        hits = [side_hit(row, variant) for row in lateral]
        summary[f"side_{variant}"] = float(np.mean(hits)) if hits else None
        summary[f"side_{variant}_interval"] = mean_interval(hits, resamples, confidence, seed)
    return summary


def write_healing_csv(rows: Sequence[HealingRow], path: str | os.PathLike) -> Path:
    """Write the rows as CSV (``truth_side`` empty when None), whole or not at all."""
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(HealingRow)])
        writer.writeheader()
        writer.writerows({**asdict(row), "truth_side": row.truth_side or ""} for row in rows)
    return Path(path)
