"""Manifest from the RSNA Pneumonia Detection Challenge layout.

``SRC/stage_2_train_images/<patientId>.dcm`` + ``SRC/stage_2_train_labels.csv``
(``patientId,x,y,width,height,Target``; one row per box, ``Target 0`` = no box) and, optionally,
``SRC/stage_2_detailed_class_info.csv`` (``patientId,class``).

Labels:

- with the detailed class file: ``Normal`` = healthy; ``Lung Opacity`` = disease with its boxes;
  ``No Lung Opacity / Not Normal`` is left out (abnormal, but without the opacity we localize, so
  neither a clean negative nor a positive);
- without it: ``Target 0`` = healthy, which then includes the "not normal" images (about a third of
  the RSNA negatives); ``Target 1`` = disease.

The patient is the RSNA ``patientId`` (one image per patient in RSNA).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..manifest import ManifestRecord
from ..splits import assign_splits
from .common import checked_box, finish_build, index_images, read_table

__all__ = ["RSNA_CLASS_INFO", "RSNA_IMAGES", "RSNA_LABELS", "build_rsna_manifest"]

logger = logging.getLogger(__name__)

RSNA_IMAGES = "stage_2_train_images"
RSNA_LABELS = "stage_2_train_labels.csv"
RSNA_CLASS_INFO = "stage_2_detailed_class_info.csv"

_HEALTHY_CLASS = "normal"
_DISEASE_CLASS = "lung opacity"
_EXCLUDED_CLASS = "no lung opacity / not normal"


def _read_boxes(labels_csv: Path) -> dict[str, list[list[float]]]:
    """patientId -> list of ``x1, y1, x2, y2`` boxes (empty list for Target 0)."""
    boxes: dict[str, list[list[float]]] = {}
    for line, row in enumerate(read_table(labels_csv, ("patientId", "x", "y", "width", "height", "Target")), start=2):
        patient = row["patientId"].strip()
        target = row["Target"].strip()
        if not patient or target not in ("0", "1"):
            raise DataError(f"line {line}: expected a patientId and Target 0 or 1, got {row}", labels_csv)
        boxes.setdefault(patient, [])
        if target == "1":
            try:
                x, y, w, h = (float(row[c]) for c in ("x", "y", "width", "height"))
            except ValueError as err:
                raise DataError(f"line {line}: Target 1 needs a numeric x, y, width, height ({row})", labels_csv) from err
            boxes[patient].append(checked_box(x, y, w, h, f"line {line}", labels_csv))
    return boxes


def _read_classes(class_csv: Path) -> dict[str, str]:
    classes: dict[str, str] = {}
    known = (_HEALTHY_CLASS, _DISEASE_CLASS, _EXCLUDED_CLASS)
    for line, row in enumerate(read_table(class_csv, ("patientId", "class")), start=2):
        name = row["class"].strip().lower()
        if name not in known:
            raise DataError(f"line {line}: unknown class '{row['class']}'", class_csv)
        classes[row["patientId"].strip()] = name
    return classes


def build_rsna_manifest(src: str | Path, val_fraction: float = 0.15, test_fraction: float = 0.0, seed: int = 0,
                        labels_csv: str | Path | None = None, class_info_csv: str | Path | None = None,
                        images_dir: str | Path | None = None, skipped: Counter[str] | None = None) -> list[ManifestRecord]:
    """Build manifest records from an RSNA Pneumonia Detection Challenge folder.

    Args:
        src: the challenge folder.
        val_fraction, test_fraction, seed: patient-level split (see :func:`assign_splits`).
        labels_csv, class_info_csv, images_dir: override the standard names under ``src``; the class
            file is used when it exists.
        skipped: a counter that receives the number of images left out, per reason.

    Images listed in the labels but missing on disk are left out and counted; :class:`DataError`
    when none is found. Boxes are ``x1, y1, x2, y2`` in the DICOM's pixels.
    """
    src = Path(src)
    skipped = Counter() if skipped is None else skipped
    labels_csv = Path(labels_csv) if labels_csv else src / RSNA_LABELS
    class_csv = Path(class_info_csv) if class_info_csv else src / RSNA_CLASS_INFO
    images = index_images(Path(images_dir) if images_dir else src / RSNA_IMAGES)
    boxes = _read_boxes(labels_csv)
    classes = _read_classes(class_csv) if class_csv.is_file() else None
    if classes is None:
        logger.info("%s not found: Target 0 images are taken as healthy, including 'not normal' ones", class_csv)
    records = []
    for patient, patient_boxes in boxes.items():
        if classes is not None:
            name = classes.get(patient)
            if name is None:
                skipped["not in the detailed class table"] += 1
                continue
            if name == _EXCLUDED_CLASS:
                skipped["'No Lung Opacity / Not Normal' (neither healthy nor opacity)"] += 1
                continue
            if (name == _DISEASE_CLASS) != bool(patient_boxes):
                raise DataError(f"patient {patient} has class '{name}' but {len(patient_boxes)} box(es) in {labels_csv}",
                                class_csv)
        image = images.get(patient)
        if image is None:
            skipped["listed in the labels but not on disk"] += 1
            continue
        records.append(ManifestRecord(image=image, label="disease" if patient_boxes else "healthy", patient_id=patient,
                                      boxes=np.asarray(patient_boxes, dtype=np.float64).reshape(-1, 4)))
    unlabelled = len(images.keys() - boxes.keys())
    if unlabelled:
        skipped["on disk but not in the labels"] += unlabelled
    finish_build(records, skipped, src, "RSNA")
    return assign_splits(records, val_fraction, test_fraction, seed)
