"""``LocalizationEvaluator``: validation during training, at network resolution.

For every validation image the generator (its EMA copy when kept) translates to Healthy and the run's
:class:`~PilletGANLib.localization.Localizer` makes the map and the detection score, as at inference.
Metrics: detection AUC over all images; pointing game and ``dice_top15`` (Dice of the truth against the map's
top 15 %) on the disease images that have boxes or masks. The full-resolution report is ``pilletgan evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from monai.engines import Evaluator

from .. import metrics
from ..localization import Localizer
from ..networks import HealthyTranslator

__all__ = ["LOCALIZATION_METRICS", "LocalizationEvaluator", "LocalizationMetric", "summarize_records"]

#: Metric names the evaluator reports (and that ``best_metric`` may name).
LOCALIZATION_METRICS = ("detection_auc", "pointing_game", "dice_top15")


def summarize_records(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Validation metrics from per-image records (``score``, ``label``, ``hit``, ``dice_top15``)."""
    scores = [r["score"] for r in records]
    labels = [r["label"] for r in records]
    located = [r for r in records if r["hit"] is not None]
    return {
        "detection_auc": metrics.detection_auc(scores, labels) if records else None,
        "pointing_game": float(np.mean([r["hit"] for r in located])) if located else None,
        "dice_top15": float(np.mean([r["dice_top15"] for r in located])) if located else None,
    }


class LocalizationMetric(Metric):
    """One validation metric computed from the evaluator's per-image records (0.0 when undefined)."""

    def __init__(self, name: str) -> None:
        if name not in LOCALIZATION_METRICS:
            raise ValueError(f"unknown validation metric '{name}' (known: {LOCALIZATION_METRICS})")
        self.name = name
        self._records: list[dict[str, Any]] = []
        super().__init__(output_transform=lambda output: output["records"])

    def reset(self) -> None:
        self._records = []

    def update(self, output: Iterable[dict[str, Any]]) -> None:
        self._records.extend(output)

    def compute(self) -> float:
        value = summarize_records(self._records)[self.name]
        return 0.0 if value is None else float(value)


class LocalizationEvaluator(Evaluator):
    """Runs ``generator`` towards the Healthy domain on batches with ``image``, ``label``, ``lesion``,
    ``has_truth`` and ``valid`` and records per-image scores for :class:`LocalizationMetric`. The ``localizer``
    makes the maps as the Predictor's does; with a lung gate it reads the batch's cached ``lung`` masks
    (:class:`~PilletGANLib.data.datasets.LungFieldsd`) when present, else estimates them on the batch."""

    def __init__(self, device: torch.device | str, val_data_loader: Iterable, generator: torch.nn.Module,
                 localizer: Localizer | None = None, healthy_index: int = 0,
                 key_metric: str = "detection_auc", bf16: bool = False, val_handlers: Sequence | None = None,
                 epoch_length: int | None = None) -> None:
        super().__init__(device=device, val_data_loader=val_data_loader, epoch_length=epoch_length,
                         key_val_metric={key_metric: LocalizationMetric(key_metric)},
                         additional_metrics={n: LocalizationMetric(n) for n in LOCALIZATION_METRICS if n != key_metric},
                         val_handlers=val_handlers, decollate=False)
        self.generator = generator
        self.localizer = localizer or Localizer()
        self.healthy_index = healthy_index
        self.bf16 = bf16

    @torch.no_grad()
    def _iteration(self, engine: Evaluator, batchdata: dict[str, Any]) -> dict[str, Any]:
        device = engine.state.device
        images = torch.as_tensor(batchdata["image"]).to(device).float()
        labels = torch.as_tensor(batchdata["label"]).view(-1)
        truth = torch.as_tensor(batchdata["lesion"])[:, 0] > 0.5
        has_truth = torch.as_tensor(batchdata["has_truth"]).view(-1).bool()
        translator = HealthyTranslator(self.generator, self.healthy_index)
        self.generator.eval()
        context = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16) if self.bf16 \
            else torch.autocast(device_type="cpu", enabled=False)
        with context:
            healed, _ = translator.heal(images)
            mirrored = self.localizer.mirrored_healing(lambda batch: translator.heal(batch)[0], images)
        lungs = batchdata.get("lung") if self.localizer.recipe.lung_gate else None
        maps = self.localizer.lesion_maps(images, healed.float(), batchdata["valid"],
                                          None if mirrored is None else mirrored.float(), lungs)
        diff = maps.maps
        scores = maps.scores.cpu()
        records = []
        for index in range(images.shape[0]):
            record = {"score": float(scores[index]), "label": int(labels[index]), "hit": None, "dice_top15": None}
            if int(labels[index]) == 1 and bool(has_truth[index]) and bool(truth[index].any()):
                heat = diff[index, 0].float().cpu().numpy()
                mask = truth[index].numpy()
                record["hit"] = metrics.pointing_game(heat, mask)
                record["dice_top15"] = metrics.dice(metrics.top_fraction_mask(heat), mask)
            records.append(record)
        return {"records": records}
