"""Loading the model an evaluation scores, and feeding its batched predictions to the harness, which asks for one
record at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..data.manifest import ManifestRecord
from ..errors import ConfigurationError, PilletGANError

__all__ = ["BatchPredictor", "PredictorStream", "predictor_from_path"]


def predictor_from_path(path: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """The predictor of a model file: a :class:`~PilletGANLib.inference.classifier.ClassifierPredictor` for a
    classifier baseline's card (``"kind": "classifier"``), else a PilletGAN
    :class:`~PilletGANLib.inference.Predictor`; ``None`` is the shipped default model. ``kwargs`` (device,
    batch size, backend, bf16) go to the predictor; a classifier runs in eager torch, float32."""
    from ..inference import Predictor
    from ..inference.classifier import ClassifierPredictor
    from ..model_store import default_model_path, read_card
    from ..networks.classifier import is_classifier_card

    weights = Path(path) if path is not None else default_model_path()
    if weights.is_file() and is_classifier_card(read_card(weights)):
        if kwargs.pop("backend", "auto") != "auto" or kwargs.pop("bf16", False):
            raise ConfigurationError(f"{weights}: a classifier baseline runs in eager torch, float32: "
                                     "leave --backend and --bf16 out")
        return ClassifierPredictor.from_path(weights, **kwargs)
    return Predictor.from_path(weights, **kwargs)


class BatchPredictor(Protocol):
    """The part of :class:`~PilletGANLib.inference.Predictor` the stream uses."""

    def predict_paths(self, paths: Iterable[str | os.PathLike], progress: bool = False
                      ) -> Iterator[tuple[Path, Any]]: ...


class PredictorStream:
    """``predict(record)`` over a predictor's batched, worker-read ``predict_paths`` for ``records``.

    Must be called with the records in the order given here (the harness does); a file the reader
    rejects raises its :class:`~PilletGANLib.errors.PilletGANError`, since an evaluation must not
    silently drop images.
    """

    def __init__(self, predictor: BatchPredictor, records: Sequence[ManifestRecord]) -> None:
        self._results = predictor.predict_paths([record.image for record in records])

    def __call__(self, record: ManifestRecord) -> Any:
        path, result = next(self._results)
        if Path(path) != Path(record.image):
            raise RuntimeError(f"predictions out of order: got {path} for {record.image}")
        if isinstance(result, PilletGANError):
            raise result
        return result
