"""The manifest: one CSV format for every training and evaluation dataset.

Columns: ``image`` (path, absolute or relative to the CSV), ``label`` (``healthy``/``disease``),
optional ``patient_id``, ``split`` (``train``/``val``/``test``), ``x,y,width,height`` (one box in
source pixels per row; several rows per image = several boxes, as in RSNA) and ``mask`` (path to a
lesion mask aligned with the image). Rows of the same image are merged into one
:class:`ManifestRecord`.

An optional ``localization_only`` column (``1``/``true`` or empty) marks disease images whose boxes are good
truth for *where* an opacity is but whose image-level label is not a clean positive (SIIM's Atypical and
Indeterminate studies): ``pilletgan evaluate`` scores their maps but keeps them out of every figure that needs a
clean disease/healthy label or that depends on the mix of the two (detection AUC, RSNA mAP, FROC). Every other
reader (training, calibration, the bundle) leaves them out: :func:`read_manifest` drops them unless asked.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..text import path_text

__all__ = ["LABELS", "SPLITS", "ManifestRecord", "read_manifest", "select_split", "write_manifest"]

LABELS = ("healthy", "disease")
SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("image", "label", "patient_id", "split", "x", "y", "width", "height", "mask")
#: The optional column that marks localization-only images (written only when a record is one).
LOCALIZATION_ONLY_COLUMN = "localization_only"
_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")

logger = logging.getLogger(__name__)


@dataclass
class ManifestRecord:
    """One image of a manifest, with all its boxes as ``(n, 4)`` ``x1, y1, x2, y2`` source pixels."""

    image: Path
    label: str
    patient_id: str | None = None
    split: str | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    mask: Path | None = None
    #: a disease image scored for localization only (see the module docstring)
    localization_only: bool = False

    @property
    def is_disease(self) -> bool:
        return self.label == "disease"

    @property
    def key(self) -> str:
        """Stem of the image file name, used to name per-image outputs and saved maps."""
        name = self.image.name
        for suffix in (".nii.gz", ".seg.nrrd"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return self.image.stem


def _float_or_none(value: str | None, column: str, where: str) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError as err:
        raise DataError(f"{where}: column '{column}' holds '{value}', not a number") from err
    if not math.isfinite(number):
        return None
    return number


def _localization_only(row: dict[str, str | None], label: str, where: str) -> bool:
    text = (row.get(LOCALIZATION_ONLY_COLUMN) or "").strip().lower()
    if text not in _TRUE + _FALSE:
        raise DataError(f"{where}: {LOCALIZATION_ONLY_COLUMN} '{text}' is not 1/true or empty/0/false")
    if text in _TRUE and label != "disease":
        raise DataError(f"{where}: only disease images can be {LOCALIZATION_ONLY_COLUMN}")
    return text in _TRUE


def read_manifest(path: str | os.PathLike, check_files: bool = False,
                  localization_only: bool = False) -> list[ManifestRecord]:
    """Read a manifest CSV; image order is the order of first appearance.

    Localization-only images (see the module docstring) are left out unless ``localization_only``; each of
    them must have boxes or a mask.

    The file is UTF-8 (a spreadsheet's byte-order mark is skipped). Raises :class:`DataError` naming the line for
    text that is not UTF-8, a missing or repeated column, a row longer than the header, an unknown label or split, an
    image listed with two labels, splits or patients, a partial or negative box, or (with ``check_files``) an image
    that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest not found", path)
    try:
        return _read_rows(path, check_files, localization_only)
    except UnicodeDecodeError as err:
        raise DataError(f"line {_first_undecodable_line(path)} of the manifest is not UTF-8 text; save it as a UTF-8 "
                        "CSV", path) from err


def _first_undecodable_line(path: Path) -> int:
    """The 1-based number of the first line that is not UTF-8 (the decoder's own offset is within a buffer)."""
    lines = path.read_bytes().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if not _is_utf8(line))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def _read_rows(path: Path, check_files: bool, localization_only: bool) -> list[ManifestRecord]:
    # utf-8-sig: a spreadsheet's "UTF-8 CSV" starts with a byte-order mark that would otherwise name the first column
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise DataError(f"the manifest's header names the column(s) {repeated} more than once", path)
        columns = set(header)
        for required in ("image", "label"):
            if required not in columns:
                raise DataError(f"the manifest has no '{required}' column (columns: {sorted(columns)})", path)
        records: dict[str, ManifestRecord] = {}
        boxes: dict[str, list[list[float]]] = {}
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in row:
                raise DataError(f"{where}: the row has {len(header) + len(row[None])} fields but the header "
                                f"{len(header)} (an unquoted comma in a path?)")
            image_text = (row.get("image") or "").strip()
            if not image_text:
                raise DataError(f"{where}: empty 'image'")
            image = Path(image_text) if os.path.isabs(image_text) else (path.parent / image_text)
            label = (row.get("label") or "").strip().lower()
            if label not in LABELS:
                raise DataError(f"{where}: label '{row.get('label')}' is not one of {LABELS}")
            split = (row.get("split") or "").strip().lower() or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{where}: split '{row.get('split')}' is not one of {SPLITS}")
            box = [_float_or_none(row.get(c), c, where) for c in ("x", "y", "width", "height")]
            only = _localization_only(row, label, where)
            key = str(image)
            if key not in records:
                mask_text = (row.get("mask") or "").strip()
                mask = None
                if mask_text:
                    mask = Path(mask_text) if os.path.isabs(mask_text) else (path.parent / mask_text)
                records[key] = ManifestRecord(image=image, label=label,
                                              patient_id=(row.get("patient_id") or "").strip() or None,
                                              split=split, mask=mask, localization_only=only)
                boxes[key] = []
            elif records[key].label != label:
                raise DataError(f"{where}: image {image_text} appears with labels '{records[key].label}' and '{label}'")
            elif records[key].split != split:
                raise DataError(f"{where}: image {image_text} appears in splits '{records[key].split}' and '{split}'")
            elif records[key].patient_id != ((row.get("patient_id") or "").strip() or None):
                raise DataError(f"{where}: image {image_text} appears with patients '{records[key].patient_id}' and "
                                f"'{row.get('patient_id')}'")
            elif records[key].localization_only != only:
                raise DataError(f"{where}: image {image_text} is {LOCALIZATION_ONLY_COLUMN} on some rows only")
            if all(v is None for v in box):
                continue
            if any(v is None for v in box):
                raise DataError(f"{where}: a box needs all of x, y, width, height (got {box})")
            x, y, w, h = box
            if w <= 0 or h <= 0:
                raise DataError(f"{where}: box width and height must be positive (got {w} x {h})")
            boxes[key].append([x, y, x + w, y + h])
    for key, record in records.items():
        record.boxes = np.asarray(boxes[key], dtype=np.float64).reshape(-1, 4)
        if record.localization_only and not len(record.boxes) and record.mask is None:
            raise DataError(f"localization-only image {record.image} has neither boxes nor a mask", path)
    kept = [r for r in records.values() if localization_only or not r.localization_only]
    if len(kept) < len(records):
        logger.info("%s: %d localization-only image(s) left out", path, len(records) - len(kept))
    for record in kept:
        if check_files and not record.image.is_file():
            raise DataError(f"image listed in the manifest does not exist: {record.image}", path)
    if not kept:
        raise DataError("the manifest lists no images" + (" besides localization-only ones" if records else ""), path)
    return kept


def write_manifest(records: Iterable[ManifestRecord], path: str | os.PathLike, relative: bool = True) -> Path:
    """Write records as a manifest CSV (one row per box, one row for images without boxes).

    Paths are written relative to the CSV's folder when ``relative`` and possible. The
    ``localization_only`` column is written only when a record is localization-only. The file is
    written to a temporary name and renamed when complete.
    """
    records = list(records)
    marked = any(record.localization_only for record in records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        if relative:
            try:
                return path_text(os.path.relpath(Path(p).resolve(), path.parent.resolve()))
            except ValueError:
                return path_text(p)
        return path_text(p)

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS + ((LOCALIZATION_ONLY_COLUMN,) if marked else ()))
        for record in records:
            base = [rel(record.image), record.label, record.patient_id or "", record.split or ""]
            tail = [rel(record.mask)] + ([int(record.localization_only) or ""] if marked else [])
            if len(record.boxes) == 0:
                writer.writerow([*base, "", "", "", "", *tail])
            for x1, y1, x2, y2 in np.asarray(record.boxes).reshape(-1, 4):
                writer.writerow([*base, f"{x1:.3f}", f"{y1:.3f}", f"{x2 - x1:.3f}", f"{y2 - y1:.3f}", *tail])
    os.replace(tmp, path)
    return path


def select_split(records: Sequence[ManifestRecord], split: str | None) -> list[ManifestRecord]:
    """Records of one split (all records when ``split`` is None)."""
    if split is None:
        return list(records)
    if split not in SPLITS:
        raise DataError(f"split '{split}' is not one of {SPLITS}")
    chosen = [r for r in records if r.split == split]
    if not chosen:
        raise DataError(f"the manifest has no images in split '{split}'")
    return chosen
