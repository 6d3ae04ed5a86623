"""The priors' SIIM recipes: lung-field boxes of the pre-resized SIIM-FISABIO-RSNA set, the lung-field model
trained on them (``pilletgan prior lung-fields``) and the opacity template fitted on the training folds'
opacity boxes (``pilletgan prior opacity-template``).

``SRC/labels/lung_boxes_dungnb1333.csv`` holds one box around both lungs per image
(``image_id, x1_256, y1_256, x2_256, y2_256``, on the 256 grid of ``SRC/images/<image_id>.jpg``);
``SRC/labels/image_labels.csv`` gives each image's patient-grouped ``fold``. Every image has a box,
whatever its study label, so all of them can train the regressor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources.common import index_images, read_table
from ..data.sources.siim import build_siim_covid_manifest
from ..errors import DataError
from .opacity_template import EXTENT, OpacityTemplate, fit_opacity_template
from .training import (
    LungFieldRecord,
    LungFieldTrainingConfig,
    lung_field_tensors,
    save_lung_field_model,
    train_lung_field_net,
)

__all__ = ["LUNG_BOX_FILE", "fit_siim_opacity_template", "read_siim_lung_fields", "train_siim_lung_fields"]

LUNG_BOX_FILE = Path("labels") / "lung_boxes_dungnb1333.csv"
_BOX_COLUMNS = ("x1_256", "y1_256", "x2_256", "y2_256")


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


def train_siim_lung_fields(src: str | os.PathLike, out: str | os.PathLike, config: LungFieldTrainingConfig | None = None,
                           val_folds: Sequence[int] = (3,), progress: bool = False) -> dict[str, Any]:
    """Train on the lung-field boxes of the SIIM folds not in ``val_folds``, validate on those, save to ``out``.

    Returns a summary: the saved path, image counts and the last epoch's validation IoU.
    """
    config = config or LungFieldTrainingConfig()
    records = read_siim_lung_fields(src)
    train_records = [r for r in records if r.fold not in val_folds]
    val_records = [r for r in records if r.fold in val_folds]
    if not train_records or not val_records:
        raise DataError(f"folds {sorted(val_folds)} leave {len(train_records)} training and {len(val_records)} "
                        "validation images; both must be non-empty", src)
    train = lung_field_tensors(train_records, config.margin, progress)
    val = lung_field_tensors(val_records, config.margin, progress)
    net, history = train_lung_field_net(train, val, config)
    data = {"source": Path(src).name, "train_images": len(train_records), "val_images": len(val_records),
            "val_folds": sorted(val_folds), "labels": str(LUNG_BOX_FILE)}
    path = save_lung_field_model(net, out, config, history, data)
    return {"model": str(path), **data, "validation": history[-1]}


def fit_siim_opacity_template(src: str | os.PathLike, out: str | os.PathLike, val_folds: Sequence[int] = (3,),
                           grid: int = 48) -> dict[str, Any]:
    """Fit the template on the disease images (Typical Appearance with opacity boxes) of the pre-resized SIIM
    folds not in ``val_folds``, framed by each image's radiologist lung-field box; save it to ``out``.

    Returns a summary: the saved path, the image count and where the template peaks.
    """
    records = build_siim_covid_manifest(src, split_by="fold", val_folds=val_folds)
    lung_boxes = {r.image: r.box for r in read_siim_lung_fields(src)}
    frames = [(lung_boxes[r.image], r.boxes) for r in records
              if r.split == "train" and r.is_disease and len(r.boxes) and r.image in lung_boxes]
    if not frames:
        raise DataError(f"no training image with opacity and lung-field boxes outside folds {sorted(val_folds)}", src)
    template, used = fit_opacity_template(frames, grid)
    data = {"source": Path(src).name, "train_images": used, "val_folds": sorted(val_folds),
            "labels": ["labels/boxes_256.csv", str(LUNG_BOX_FILE)],
            "images": "Typical Appearance studies with opacity boxes"}
    fitted = OpacityTemplate(template, {"name": "PilletGAN opacity-location prior", "extent": list(EXTENT),
                                        "coordinates": "u, v = 0 at the lung-field box's left/top edge, 1 at its "
                                                       "right/bottom edge; template[v, u], mirror-averaged",
                                        "training": {"data": data}})
    path = fitted.save(out)
    row, col = divmod(int(template.argmax()), grid)
    low, high = EXTENT
    peak = {"value": float(template.max()), "u": low + (col + 0.5) * (high - low) / grid,
            "v": low + (row + 0.5) * (high - low) / grid}
    return {"model": str(path), **data, "peak": peak}
