"""Manifest from the NIH ChestX-ray14 layout.

``SRC/images/*.png`` (or the official release's ``images_001/images/*.png`` ... folders: every PNG
under ``SRC`` is found by file name) + ``Data_Entry_2017*.csv[.gz]`` (``Image Index``,
``Finding Labels`` separated by ``|``, ``Patient ID``, ...) + optional ``BBox_List_2017.csv``
(``Image Index``, ``Finding Label``, then ``x, y, w, h`` in the 1024 x 1024 grid of the official
PNGs; its header cell ``Bbox [x,y,w,h]`` spans four columns, so the box is read by position).

Labels: ``No Finding`` = healthy; images whose labels include one of the chosen findings
(default ``Pneumonia``; ``Consolidation`` and ``Infiltration`` are common additions) = disease,
with the official boxes of those findings; every other image is left out. The bounding-box list
calls Infiltration "Infiltrate": both names are accepted. Boxes are rescaled when an image is not
1024 x 1024 (downscaled copies). The patient is the table's ``Patient ID``.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...errors import DataError
from ..manifest import ManifestRecord
from ..splits import assign_splits
from .common import checked_box, finish_build, index_images, open_table, read_table

__all__ = ["NIH_BOX_GRID", "NIH_DEFAULT_FINDINGS", "build_nih_manifest", "find_data_entry"]

NIH_DEFAULT_FINDINGS = ("Pneumonia",)
#: Side of the pixel grid the official boxes refer to.
NIH_BOX_GRID = 1024
_HEALTHY = "no_finding"
_ALIASES = {"infiltrate": "infiltration"}


def _canonical(finding: str) -> str:
    name = finding.strip().lower().replace(" ", "_")
    return _ALIASES.get(name, name)


def find_data_entry(src: Path) -> Path:
    """The ``Data_Entry_2017*.csv[.gz]`` table in ``src`` (the newest revision when several)."""
    tables = sorted(p for p in src.glob("Data_Entry_2017*") if p.name.lower().endswith((".csv", ".csv.gz")))
    if not tables:
        raise DataError("no Data_Entry_2017*.csv(.gz) label table in the folder", src)
    return tables[-1]


def _read_bbox_list(path: Path, findings: set[str]) -> dict[str, list[list[float]]]:
    """Image name -> ``x1, y1, x2, y2`` boxes (1024 grid) of the chosen findings."""
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    try:
        with open_table(path) as handle:
            rows = csv.reader(handle)
            header = next(rows, [])
            if len(header) < 3 or header[0].strip() != "Image Index" or header[1].strip() != "Finding Label":
                raise DataError(f"not an NIH bounding-box list (header {header})", path)
            for line, row in enumerate(rows, start=2):
                if not row or not row[0].strip():
                    continue
                if _canonical(row[1]) not in findings:
                    continue
                try:
                    x, y, w, h = (float(v) for v in row[2:6])
                except ValueError as err:
                    raise DataError(f"line {line}: expected numeric x, y, w, h, got {row[2:6]}", path) from err
                boxes[row[0].strip()].append(checked_box(x, y, w, h, f"line {line}", path))
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the bounding-box list ({err})", path) from err
    return boxes


def _scale_to_image(boxes: list[list[float]], image: Path) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    try:
        with Image.open(image) as img:
            width, height = img.size
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read the image size to place its boxes ({err})", image) from err
    return array * np.array([width, height, width, height]) / NIH_BOX_GRID


def build_nih_manifest(src: str | Path, findings: Sequence[str] = NIH_DEFAULT_FINDINGS, val_fraction: float = 0.15,
                       test_fraction: float = 0.0, seed: int = 0, data_entry_csv: str | Path | None = None,
                       bbox_csv: str | Path | None = None, images_dir: str | Path | None = None,
                       skipped: Counter[str] | None = None) -> list[ManifestRecord]:
    """Build manifest records from an NIH ChestX-ray14 folder.

    Args:
        src: the dataset folder.
        findings: NIH finding labels counted as disease (case-insensitive).
        val_fraction, test_fraction, seed: patient-level split (see :func:`assign_splits`).
        data_entry_csv, bbox_csv, images_dir: override the defaults (newest ``Data_Entry_2017*`` in
            ``src``; ``src/BBox_List_2017.csv`` when it exists; every PNG under ``src``).
        skipped: a counter that receives the number of images left out, per reason.
    """
    src = Path(src)
    skipped = Counter() if skipped is None else skipped
    chosen = {_canonical(f) for f in findings}
    if not chosen or _HEALTHY in chosen:
        raise DataError(f"findings must name at least one disease label, got {list(findings)}")
    table = Path(data_entry_csv) if data_entry_csv else find_data_entry(src)
    rows = read_table(table, ("Image Index", "Finding Labels", "Patient ID"))
    present = {_canonical(label) for row in rows for label in row["Finding Labels"].split("|")}
    unknown = sorted(chosen - present)
    if unknown:
        raise DataError(f"finding(s) {unknown} never occur in the table (it has {sorted(present)})", table)
    bbox_path = Path(bbox_csv) if bbox_csv else src / "BBox_List_2017.csv"
    box_table = _read_bbox_list(bbox_path, chosen) if bbox_path.is_file() else {}
    images = index_images(Path(images_dir) if images_dir else src, suffixes=(".png",), by="name")
    records = []
    for row in rows:
        name = row["Image Index"].strip()
        labels = {_canonical(label) for label in row["Finding Labels"].split("|")}
        if labels == {_HEALTHY}:
            label = "healthy"
        elif labels & chosen:
            label = "disease"
        else:
            skipped[f"other findings only (neither No Finding nor {sorted(chosen)})"] += 1
            continue
        image = images.get(name)
        if image is None:
            skipped["listed in the table but not on disk"] += 1
            continue
        boxes = _scale_to_image(box_table[name], image) if label == "disease" and name in box_table else np.zeros((0, 4))
        records.append(ManifestRecord(image=image, label=label, patient_id=row["Patient ID"].strip() or None,
                                      boxes=boxes))
    finish_build(records, skipped, src, "NIH")
    return assign_splits(records, val_fraction, test_fraction, seed)
