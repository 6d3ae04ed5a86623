"""The end of a bundle training run: the calibrated model file, as ``pilletgan train`` writes it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Events
from torch.utils.data import Dataset

from ..data.manifest import ManifestRecord
from ..engine.config import TrainingConfig
from ..engine.distributed import DistributedContext
from ..engine.evaluator import LocalizationEvaluator
from ..engine.trainer import PilletGANTrainer
from ..engine.workflow import export_trained_model

__all__ = ["export_model"]


def export_model(trainer: PilletGANTrainer, evaluator: LocalizationEvaluator, settings: TrainingConfig,
                 run_dir: str | os.PathLike, source: str | os.PathLike, train_records: Sequence[ManifestRecord],
                 val_dataset: Dataset, val_records: Sequence[ManifestRecord]) -> dict[str, Any]:
    """Write ``run_dir/model.pt`` + ``model.json`` (and ``run.json``) after ``trainer`` has run.

    The same export as ``pilletgan train``: the EMA and the raw generator are scored on the validation
    images, the better one (by ``settings.best_metric``) is kept, the heat-map scale and mask threshold
    are calibrated on the healthy validation images, and the card records network, preprocessing,
    localization and training (see :func:`~PilletGANLib.engine.workflow.export_trained_model`).

    Args:
        trainer: the finished trainer.
        evaluator: the run's validation evaluator (its loader, localization settings and device are used).
        settings: the run's hyperparameters (as in ``train.json``).
        run_dir: the run folder.
        source: the manifest or dataset folder trained on (recorded in the card).
        train_records, val_dataset, val_records: the training records and the validation data.

    Returns:
        the run summary (``model``, ``exported``, ``validation``, ``calibration``, ``wall_time_s``).
    """
    device = evaluator.state.device
    data = {"manifest": str(Path(source).resolve()), "train_images": len(train_records),
            "train_disease": sum(r.is_disease for r in train_records), "validation_images": len(val_records)}
    start_time = time.time() - (trainer.state.times.get(Events.COMPLETED.name) or 0.0)
    return export_trained_model(trainer, settings, evaluator, val_dataset, list(val_records), Path(run_dir), data,
                                device, DistributedContext(), start_time)
