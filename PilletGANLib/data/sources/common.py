"""Helpers shared by the manifest builders: label tables, image indexes, skipped-image accounting."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ...errors import DataError
from ..manifest import ManifestRecord

__all__ = ["IMAGE_SUFFIXES", "checked_box", "finish_build", "index_images", "open_table", "read_table"]

logger = logging.getLogger(__name__)

#: File suffixes taken as images when a layout's folders are walked.
IMAGE_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def open_table(path: Path) -> io.TextIOBase:
    """Open a CSV file (plain or ``.gz``) as text."""
    try:
        if path.name.lower().endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as err:
        raise DataError(f"cannot open the label table ({err.strerror or err})", path) from err


def checked_box(x: float, y: float, width: float, height: float, where: str, path: Path) -> list[float]:
    """``[x1, y1, x2, y2]`` of a label table's box; DataError naming ``where`` in ``path`` when a coordinate is not
    finite or the box has no area (written into a manifest, such a box failed only when training read it)."""
    box = [x, y, x + width, y + height]
    if not all(math.isfinite(v) for v in box) or not (width > 0 and height > 0):
        raise DataError(f"{where}: a box needs finite coordinates and a positive width and height, got x {x:g}, "
                        f"y {y:g}, width {width:g}, height {height:g}", path)
    return box


def read_table(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV label table as dicts; :class:`DataError` when it is missing, unreadable or lacks a column."""
    if not path.is_file():
        raise DataError("label table not found", path)
    try:
        with open_table(path) as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(f"the table lacks the column(s) {missing} (it has {columns})", path)
            reader.fieldnames = columns
            return list(reader)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read the label table ({err})", path) from err


def index_images(root: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES, by: str = "stem") -> dict[str, Path]:
    """Index the image files under ``root`` (recursively) by stem, file name or path relative to ``root``.

    ``by`` is ``"stem"``, ``"name"`` or ``"path"``. Raises :class:`DataError` when ``root`` is not a
    folder or two files share a key.
    """
    if not root.is_dir():
        raise DataError("image folder not found", root)
    wanted = tuple(s.lower() for s in suffixes)
    index: dict[str, Path] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.lower().endswith(wanted) or name.startswith("."):
                continue
            path = Path(folder) / name
            key = {"stem": path.stem, "name": name, "path": str(path.relative_to(root))}[by]
            if key in index:
                raise DataError(f"two image files are both named '{key}': {index[key]} and {path}", root)
            index[key] = path
    return index


def finish_build(records: list[ManifestRecord], skipped: Counter[str], source: Path, what: str) -> list[ManifestRecord]:
    """Log what was left out; raise :class:`DataError` when nothing usable was found."""
    for reason, count in sorted(skipped.items()):
        logger.warning("%s: %d image(s) left out: %s", source, count, reason)
    if not records:
        raise DataError(f"no usable {what} images found (left out: {dict(skipped) or 'none'})", source)
    return records
