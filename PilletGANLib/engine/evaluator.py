"""``LocalizationEvaluator``: validation during training, at network resolution.

For every validation image the generator (its EMA copy when kept) translates to Healthy; the
gated, smoothed difference gives the detection score and the map. Metrics: detection AUC over all
images; pointing game and ``dice_top15`` (Dice of the truth against the map's top 15 %) on the
disease images that have boxes or masks. The full-resolution report is ``pilletgan evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from monai.engines import Evaluator

from .. import metrics
from ..inference.lesion_map import LocalizationConfig, lesion_maps_and_scores, lung_map_weights, mirrored_translation
from .trainer import lung_edit_gates

__all__ = ["LOCALIZATION_METRICS", "LocalizationEvaluator", "LocalizationMetric", "gates_from_valid",
           "summarize_records"]

#: Metric names the evaluator reports (and that ``best_metric`` may name).
LOCALIZATION_METRICS = ("detection_auc", "pointing_game", "dice_top15")


def gates_from_valid(valid: torch.Tensor, border_fraction: float) -> torch.Tensor:
    """Gate ``(B, 1, N, N)``: the valid (unpadded) area minus a border margin of its extent."""
    gates = torch.zeros_like(valid, dtype=torch.float32)
    for index, item in enumerate(valid[:, 0] > 0.5):
        rows = torch.nonzero(item.any(1)).flatten()
        cols = torch.nonzero(item.any(0)).flatten()
        if len(rows) == 0:
            continue
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        mr, mc = round((bottom - top) * border_fraction), round((right - left) * border_fraction)
        gates[index, 0, top + mr: bottom - mr, left + mc: right - mc] = 1.0
    return gates


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
    ``has_truth`` and ``valid`` and records per-image scores for :class:`LocalizationMetric`. With
    ``localization.lung_gate`` maps are lung-gated like the Predictor's: by the batch's cached ``lung`` masks
    (:class:`~PilletGANLib.data.datasets.LungFieldsd`), else by lung fields estimated on the batch."""

    def __init__(self, device: torch.device | str, val_data_loader: Iterable, generator: torch.nn.Module,
                 localization: LocalizationConfig | None = None, healthy_index: int = 0,
                 key_metric: str = "detection_auc", bf16: bool = False, val_handlers: Sequence | None = None,
                 epoch_length: int | None = None) -> None:
        super().__init__(device=device, val_data_loader=val_data_loader, epoch_length=epoch_length,
                         key_val_metric={key_metric: LocalizationMetric(key_metric)},
                         additional_metrics={n: LocalizationMetric(n) for n in LOCALIZATION_METRICS if n != key_metric},
                         val_handlers=val_handlers, decollate=False)
        self.generator = generator
        self.localization = localization or LocalizationConfig()
        self.healthy_index = healthy_index
        self.bf16 = bf16

    @torch.no_grad()
    def _iteration(self, engine: Evaluator, batchdata: dict[str, Any]) -> dict[str, Any]:
        device = engine.state.device
        images = torch.as_tensor(batchdata["image"]).to(device).float()
        labels = torch.as_tensor(batchdata["label"]).view(-1)
        truth = torch.as_tensor(batchdata["lesion"])[:, 0] > 0.5
        has_truth = torch.as_tensor(batchdata["has_truth"]).view(-1).bool()
        border = gates_from_valid(torch.as_tensor(batchdata["valid"]), self.localization.border_fraction).to(device)
        map_gates = score_gates = border
        if self.localization.lung_gate:  # as the Predictor gates: the batch's cached masks, else estimated here
            lungs = torch.as_tensor(batchdata["lung"]).as_subclass(torch.Tensor)[:, 0] if "lung" in batchdata \
                else lung_edit_gates(images, self.localization.lung_margin)[:, 0].cpu()
            weights = torch.stack([lung_map_weights(mask, self.localization.lung_weighting) for mask in lungs])
            map_gates = border * weights[:, None].to(device)
            if self.localization.score_region == "map":
                score_gates = border * lungs[:, None].to(device).float()
        self.generator.eval()
        target = torch.full((images.shape[0],), self.healthy_index, dtype=torch.long, device=device)
        context = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16) if self.bf16 \
            else torch.autocast(device_type="cpu", enabled=False)
        with context:
            healed, _ = self.generator(images, target)
            mirrored = None
            if self.localization.mirror_average:
                mirrored = mirrored_translation(lambda batch: self.generator(batch, target)[0], images).float()
        diff, scores = lesion_maps_and_scores(images, healed.float(), self.localization, map_gates, score_gates, mirrored)
        scores = scores.cpu()
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
