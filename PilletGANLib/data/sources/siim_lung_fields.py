"""Lung-field boxes of the pre-resized SIIM-FISABIO-RSNA set, for training the lung-field regressor.

``SRC/labels/lung_boxes_dungnb1333.csv`` holds one box around both lungs per image
(``image_id, x1_256, y1_256, x2_256, y2_256``, on the 256 grid of ``SRC/images/<image_id>.jpg``);
``SRC/labels/image_labels.csv`` gives each image's patient-grouped ``fold``. Every image has a box,
whatever its study label, so all of them can train the regressor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from .common import index_images, read_table

__all__ = ["LUNG_BOX_FILE", "LungFieldRecord", "read_siim_lung_fields"]

LUNG_BOX_FILE = Path("labels") / "lung_boxes_dungnb1333.csv"
_BOX_COLUMNS = ("x1_256", "y1_256", "x2_256", "y2_256")


@dataclass(frozen=True)
class LungFieldRecord:
    """One image with its lung-field box ``x1, y1, x2, y2`` in the image's pixels and its fold."""

    image: Path
    box: tuple[float, float, float, float]
    fold: int


def read_siim_lung_fields(src: str | Path) -> list[LungFieldRecord]:
    """All images of ``src`` that have both a lung-field box and a fold, in the box table's order."""
    src = Path(src)
    boxes_csv, labels_csv = src / LUNG_BOX_FILE, src / "labels" / "image_labels.csv"
    for path in (boxes_csv, labels_csv):
        if not path.is_file():
            raise DataError("not the pre-resized SIIM layout with lung-field boxes: file missing", path)
    folds = {}
    for line, row in enumerate(read_table(labels_csv, ("image_id", "fold")), start=2):
        try:
            folds[row["image_id"]] = int(row["fold"])
        except ValueError as err:
            raise DataError(f"line {line}: fold '{row['fold']}' is not an integer", labels_csv) from err
    images = index_images(src / "images")
    records = []
    for line, row in enumerate(read_table(boxes_csv, ("image_id", *_BOX_COLUMNS)), start=2):
        key = row["image_id"]
        if key not in images or key not in folds:
            continue
        try:
            x1, y1, x2, y2 = (float(row[c]) for c in _BOX_COLUMNS)
        except ValueError as err:
            raise DataError(f"line {line}: a lung-box coordinate is not a number", boxes_csv) from err
        if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
            raise DataError(f"line {line}: lung box ({x1}, {y1}, {x2}, {y2}) is empty or not finite", boxes_csv)
        records.append(LungFieldRecord(images[key], (x1, y1, x2, y2), folds[key]))
    if not records:
        raise DataError("no image has both a lung-field box and a fold", boxes_csv)
    return records
