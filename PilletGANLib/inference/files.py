"""Run the predictor over input files and write each image's result files (``pilletgan infer``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PilletGANError
from ..outputs import DEFAULT_FORMATS, output_stem, write_result_files
from .predictor import Predictor

__all__ = ["InferenceSummary", "infer_files", "unique_stems"]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSummary:
    """What ``infer_files`` did: one record per written image, one per failed file."""

    written: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output stems for ``paths``; repeated stems get ``_2``, ``_3``... in input order."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = output_stem(path)
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        stems.append(stem if count == 1 else f"{stem}_{count}")
    return stems


def infer_files(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, predictor: Predictor,
                formats: Sequence[str] = DEFAULT_FORMATS, progress: bool = True) -> InferenceSummary:
    """Predict every input and write its files into ``out_dir``; a bad file is recorded, the rest go on."""
    paths = [Path(p) for p in inputs]
    stems = dict(zip(paths, unique_stems(paths), strict=True))
    summary = InferenceSummary()
    for path, outcome in predictor.predict_paths(paths, progress=progress):
        if isinstance(outcome, PilletGANError):
            logger.error("%s", outcome)
            summary.failed.append({"input": str(path), "error": type(outcome).__name__, "reason": outcome.reason})
            continue
        try:
            files = write_result_files(outcome, out_dir, stems[path], formats, extra={
                "min_component_fraction": predictor.localizer.recipe.min_component_fraction})
        except PilletGANError as err:
            logger.error("%s", err)
            summary.failed.append({"input": str(path), "error": type(err).__name__, "reason": err.reason})
            continue
        summary.written.append({"input": str(path), "score": outcome.score, "boxes": len(outcome.boxes),
                                "files": {k: str(v) for k, v in files.items()}})
    return summary
