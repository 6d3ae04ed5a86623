"""Feeding a model's batched predictions to the harness, which asks for one record at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..data.manifest import ManifestRecord
from ..errors import PilletGANError

__all__ = ["BatchPredictor", "PredictorStream"]


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
