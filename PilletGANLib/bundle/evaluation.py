"""The bundle's evaluation workflow: ``pilletgan evaluate`` on a dataset, as one ``run()``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.manifest import ManifestRecord
from ..evaluation import evaluate
from ..evaluation.model import PredictorStream
from ..inference import Predictor

__all__ = ["EvaluationReport"]


class EvaluationReport:
    """Score ``predictor`` on ``records`` (and the floor maps) with the evaluation harness.

    ``run()`` writes ``metrics.json``, ``per_image.csv``, the ROC/FROC/overlay figures and ``index.html``
    to ``output_dir`` and returns the metrics, exactly as ``pilletgan evaluate`` does.

    Args:
        records: the images with labels, boxes and masks.
        predictor: the model (its card's preprocessing and localization settings apply).
        output_dir: folder for the report.
        data_info: what was evaluated (recorded in ``metrics.json``).
        floors: also score the floors (random map, lung prior, grey level).
        progress: show a progress bar.
    """

    def __init__(self, records: Sequence[ManifestRecord], predictor: Predictor, output_dir: str | os.PathLike,
                 data_info: Mapping[str, Any] | None = None, floors: bool = True, progress: bool = True) -> None:
        self.records = list(records)
        self.predictor = predictor
        self.output_dir = Path(output_dir)
        self.data_info = dict(data_info or {})
        self.floors = floors
        self.progress = progress

    def run(self) -> dict[str, Any]:
        model_info = {"kind": "model", **self.predictor.model_info}
        return evaluate(self.records, PredictorStream(self.predictor, self.records), self.output_dir,
                        model_info=model_info, data_info=self.data_info, floors=self.floors, progress=self.progress)
