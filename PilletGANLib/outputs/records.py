"""The per-image JSON record: score, threshold, boxes, identification, and the files written beside it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..text import path_text
from ..version import __version__
from .atomic import atomic_path

__all__ = ["json_ready", "write_record_json"]


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and paths made JSON types; NaN and infinities become ``None``;
    text and paths pass through :func:`~PilletGANLib.text.path_text`, so a file name that is not UTF-8 is kept,
    readably, instead of failing the write."""
    if isinstance(value, Mapping):
        return {path_text(str(k)): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, os.PathLike)):
        return path_text(value)
    return value


def write_record_json(result: Any, path: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                      files: Mapping[str, str] | None = None) -> Path:
    """Write ``result.summary()`` as JSON, with ``files`` (output kind -> file name) and ``extra`` keys added.

    Args:
        result: a :class:`~PilletGANLib.inference.LesionResult` (anything with ``summary()``).
        path: destination ``.json``.
        extra: more keys for the record (for example ``min_component_fraction``); they override the summary's.
        files: the other outputs of this image, as names relative to the record's folder.
    """
    record = {**result.summary(), "pilletgan_version": __version__, "files": dict(files or {}), **(extra or {})}
    text = json.dumps(json_ready(record), indent=2, allow_nan=False)
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
    return path
