"""Run the predictor over input files and write each image's result files (``pilletgan infer``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..errors import PilletGANError, error_kind
from ..outputs import DEFAULT_FORMATS, output_stem, write_result_files
from ..text import path_text
from .predictor import Predictor

__all__ = ["InferenceSummary", "infer_files", "unique_stems"]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSummary:
    """What ``infer_files`` did: one record per written image, one per failed file (``input``, ``kind``,
    ``error``, ``reason``)."""

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
    """Predict every input and write its files into ``out_dir``; a bad file is recorded, the rest go on.

    Failures are returned (``summary.failed``, with the :mod:`PilletGANLib.errors` kind) rather than printed, so
    that the caller reports each one once; the progress bar shows how many failed so far.
    """
    paths = [Path(p) for p in inputs]
    stems = dict(zip(paths, unique_stems(paths), strict=True))
    summary = InferenceSummary()
    with logging_redirect_tqdm(), tqdm(total=len(paths), unit="image", desc="infer", disable=not progress or not paths,
                                       dynamic_ncols=True) as bar:
        for path, outcome in predictor.predict_paths(paths):
            bar.update(1)
            if isinstance(outcome, PilletGANError):
                summary.failed.append(_failure(path, outcome))
                bar.set_postfix(failed=len(summary.failed))
                continue
            try:
                files = write_result_files(outcome, out_dir, stems[path], formats, extra={
                    "min_component_fraction": predictor.localizer.recipe.min_component_fraction})
            except PilletGANError as err:
                summary.failed.append(_failure(path, err))
                bar.set_postfix(failed=len(summary.failed))
                continue
            summary.written.append({"input": path_text(path), "score": outcome.score, "finding": outcome.finding,
                                    "boxes": len(outcome.boxes),
                                    "files": {k: path_text(v) for k, v in files.items()},
                                    "warnings": list(outcome.meta.get("warnings") or [])})
    return summary


def _failure(path: Path, err: PilletGANError) -> dict[str, str]:
    logger.debug("%s", err)
    return {"input": path_text(path), "kind": error_kind(err), "error": type(err).__name__, "reason": err.reason}
