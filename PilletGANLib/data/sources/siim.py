"""Manifest from the SIIM-FISABIO-RSNA COVID-19 Detection layout, original or pre-resized.

Original layout: ``SRC/train_image_level.csv`` (``id`` = ``<image>_image``, ``boxes`` = a Python
literal list of ``{'x', 'y', 'width', 'height'}`` dicts in the DICOM's pixels, ``StudyInstanceUID``)
+ ``SRC/train_study_level.csv`` (``id`` = ``<study>_study`` and the one-hot columns
``Negative for Pneumonia``, ``Typical Appearance``, ``Indeterminate Appearance``,
``Atypical Appearance``) + ``SRC/train/<study>/<series>/<image>.dcm``. The tables carry no patient
id: the DICOM header's PatientID is read (header only) and the study id is used when it is empty
or when ``patient_from_dicom`` is off. There are no folds in this layout.

Pre-resized layout (``../shared/data/siim_covid_256``): ``SRC/images/<image_id>.jpg`` +
``SRC/labels/image_labels.csv`` (``image_id``, ``patient_id``, ``fold``, ``study_label``, ...) +
``SRC/labels/boxes_256.csv`` (``x1_256, y1_256, x2_256, y2_256`` on the 256 grid). Its patient-grouped
folds can give the split (``split_by="fold"``).

Labels in both: ``Negative for Pneumonia`` study and no box = healthy; ``Typical Appearance`` study
with at least one box = disease; everything else (indeterminate, atypical, and images without box in
a positive study, which are not negatives) is left out. With ``keep_boxed``, the boxed images of
``Indeterminate`` and ``Atypical`` studies are kept too, as disease images marked ``localization_only``
(:mod:`PilletGANLib.data.manifest`): their boxes say where an opacity is, so they count for localization and
laterality, never for detection, and training does not read them. They do not move any other image between
splits. The layout is detected from the files.
"""

from __future__ import annotations

import ast
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ...errors import ConfigurationError, DataError
from ..manifest import ManifestRecord
from ..splits import assign_splits, patient_key, split_by_folds
from .common import checked_box, finish_build, index_images, read_table

__all__ = ["SIIM_STUDY_CLASSES", "build_siim_covid_manifest", "detect_siim_layout"]

SIIM_STUDY_CLASSES = ("Negative for Pneumonia", "Typical Appearance", "Indeterminate Appearance", "Atypical Appearance")
_HEALTHY, _DISEASE = SIIM_STUDY_CLASSES[0], SIIM_STUDY_CLASSES[1]
#: Study classes whose boxed images ``keep_boxed`` keeps as localization-only disease images.
LOCALIZATION_ONLY_CLASSES = SIIM_STUDY_CLASSES[2:]


def detect_siim_layout(src: Path) -> str:
    """``"original"`` or ``"resized"``; :class:`DataError` when ``src`` is neither."""
    if (src / "labels" / "image_labels.csv").is_file() and (src / "images").is_dir():
        return "resized"
    if (src / "train_image_level.csv").is_file() and (src / "train_study_level.csv").is_file():
        return "original"
    raise DataError("not a SIIM-FISABIO-RSNA COVID-19 folder: expected train_image_level.csv + train_study_level.csv "
                    "+ train/, or labels/image_labels.csv + labels/boxes_256.csv + images/", src)


def _label(study_class: str, n_boxes: int, keep_boxed: bool) -> tuple[str, bool] | None:
    """``(label, localization_only)`` of an image, or None when it is left out."""
    if study_class == _HEALTHY and n_boxes == 0:
        return "healthy", False
    if study_class == _DISEASE and n_boxes > 0:
        return "disease", False
    if keep_boxed and study_class in LOCALIZATION_ONLY_CLASSES and n_boxes > 0:
        return "disease", True
    return None


def _skip_reason(study_class: str, keep_boxed: bool) -> str:
    if study_class in (_HEALTHY, _DISEASE) or keep_boxed:
        return f"'{study_class}' study {'with' if study_class == _HEALTHY else 'without'} opacity boxes"
    return f"'{study_class}' study"


def _study_classes(path: Path) -> dict[str, str]:
    classes = {}
    for line, row in enumerate(read_table(path, ("id", *SIIM_STUDY_CLASSES)), start=2):
        hot = [name for name in SIIM_STUDY_CLASSES if row[name].strip() in ("1", "1.0")]
        if len(hot) != 1:
            raise DataError(f"line {line}: study {row['id']} needs exactly one class set to 1, got {hot}", path)
        classes[row["id"].strip().removesuffix("_study")] = hot[0]
    return classes


def _literal_boxes(text: str, where: str, path: Path) -> np.ndarray:
    text = text.strip()
    if not text or text.lower() == "nan":
        return np.zeros((0, 4))
    try:
        items = ast.literal_eval(text)
        corners = [(float(b["x"]), float(b["y"]), float(b["width"]), float(b["height"])) for b in items]
    except (ValueError, SyntaxError, TypeError, KeyError, RecursionError, MemoryError) as err:
        raise DataError(f"{where}: cannot parse the boxes {text[:80]!r} ({type(err).__name__}: {str(err)[:80]})",
                        path) from err
    return np.asarray([checked_box(*box, where, path) for box in corners], dtype=np.float64).reshape(-1, 4)


def _dicom_patient_id(path: Path) -> str | None:
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except (InvalidDicomError, OSError) as err:
        raise DataError(f"cannot read the DICOM header for the patient id ({err})", path) from err
    value = str(header.get("PatientID", "") or "").strip()
    return value or None


def _original(src: Path, patient_from_dicom: bool, keep_boxed: bool, skipped: Counter[str]) -> list[ManifestRecord]:
    image_csv = src / "train_image_level.csv"
    studies = _study_classes(src / "train_study_level.csv")
    images = index_images(src / "train", suffixes=(".dcm",))
    records = []
    for line, row in enumerate(read_table(image_csv, ("id", "boxes", "StudyInstanceUID")), start=2):
        image_id, study = row["id"].strip().removesuffix("_image"), row["StudyInstanceUID"].strip()
        if study not in studies:
            raise DataError(f"line {line}: study {study} of image {image_id} is not in train_study_level.csv", image_csv)
        boxes = _literal_boxes(row["boxes"], f"line {line}", image_csv)
        labelled = _label(studies[study], len(boxes), keep_boxed)
        if labelled is None:
            skipped[_skip_reason(studies[study], keep_boxed)] += 1
            continue
        path = images.get(image_id)
        if path is None:
            skipped["listed in the table but not on disk"] += 1
            continue
        patient = (_dicom_patient_id(path) if patient_from_dicom else None) or study
        label, localization_only = labelled
        records.append(ManifestRecord(image=path, label=label, patient_id=patient, localization_only=localization_only,
                                      boxes=boxes if label == "disease" else np.zeros((0, 4))))
    return records


def _resized(src: Path, keep_boxed: bool, skipped: Counter[str]) -> tuple[list[ManifestRecord], list[int]]:
    boxes_csv = src / "labels" / "boxes_256.csv"
    columns = ("x1_256", "y1_256", "x2_256", "y2_256")
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for line, row in enumerate(read_table(boxes_csv, ("image_id", *columns)), start=2):
        try:
            x1, y1, x2, y2 = (float(row[c]) for c in columns)
        except ValueError as err:
            raise DataError(f"line {line}: box coordinates must be numbers ({row})", boxes_csv) from err
        boxes[row["image_id"].strip()].append(checked_box(x1, y1, x2 - x1, y2 - y1, f"line {line}", boxes_csv))
    images = index_images(src / "images")
    labels_csv = src / "labels" / "image_labels.csv"
    records, folds = [], []
    for line, row in enumerate(read_table(labels_csv, ("image_id", "patient_id", "fold", "study_label")), start=2):
        image_id = row["image_id"].strip()
        study_class = row["study_label"].strip()
        if study_class not in SIIM_STUDY_CLASSES:
            raise DataError(f"line {line}: unknown study label '{study_class}'", labels_csv)
        labelled = _label(study_class, len(boxes.get(image_id, [])), keep_boxed)
        if labelled is None:
            skipped[_skip_reason(study_class, keep_boxed)] += 1
            continue
        path = images.get(image_id)
        if path is None:
            skipped["listed in the table but not on disk"] += 1
            continue
        try:
            folds.append(int(row["fold"]))
        except ValueError as err:
            raise DataError(f"line {line}: fold '{row['fold']}' is not an integer", labels_csv) from err
        label, localization_only = labelled
        records.append(ManifestRecord(image=path, label=label, patient_id=row["patient_id"].strip() or None,
                                      boxes=np.asarray(boxes.get(image_id, []), dtype=np.float64).reshape(-1, 4),
                                      localization_only=localization_only))
    return records, folds


def build_siim_covid_manifest(src: str | Path, val_fraction: float = 0.15, test_fraction: float = 0.0, seed: int = 0,
                              split_by: str = "patient", val_folds: Sequence[int] = (3,), test_folds: Sequence[int] = (),
                              patient_from_dicom: bool = True, keep_boxed: bool = False,
                              skipped: Counter[str] | None = None) -> list[ManifestRecord]:
    """Build manifest records from a SIIM-FISABIO-RSNA COVID-19 folder (layout detected).

    Args:
        src: the competition folder, or a pre-resized copy such as ``siim_covid_256``.
        val_fraction, test_fraction, seed: patient-level split (``split_by="patient"``).
        split_by: ``"patient"`` (seeded patient split) or ``"fold"`` (the pre-resized copy's folds:
            ``val_folds`` -> val, ``test_folds`` -> test, the rest train).
        patient_from_dicom: original layout only: read PatientID from each DICOM header.
        keep_boxed: also keep the boxed images of Indeterminate and Atypical studies, marked
            ``localization_only``. The other images keep exactly the splits they get without it: with
            ``split_by="patient"`` a kept image takes its patient's split, and patients seen only in kept
            images are split among themselves with the same fractions and seed.
        skipped: a counter that receives the number of images left out, per reason.
    """
    src = Path(src)
    skipped = Counter() if skipped is None else skipped
    if split_by not in ("patient", "fold"):
        raise ConfigurationError(f"split_by must be 'patient' or 'fold', got '{split_by}'")
    layout = detect_siim_layout(src)
    if layout == "original":
        if split_by == "fold":
            raise ConfigurationError("the original SIIM layout has no folds: use split_by='patient'", src)
        records = _original(src, patient_from_dicom, keep_boxed, skipped)
        folds: list[int] = []
    else:
        records, folds = _resized(src, keep_boxed, skipped)
    finish_build(records, skipped, src, "SIIM-FISABIO-RSNA COVID-19")
    if split_by == "fold":
        return split_by_folds(records, folds, val_folds, test_folds)
    return _patient_splits(records, val_fraction, test_fraction, seed)


def _patient_splits(records: list[ManifestRecord], val_fraction: float, test_fraction: float, seed: int
                    ) -> list[ManifestRecord]:
    """Seeded patient splits of the labelled images, unchanged by localization-only ones (see ``keep_boxed``)."""
    labelled = assign_splits([r for r in records if not r.localization_only], val_fraction, test_fraction, seed)
    split_of = {patient_key(r): r.split for r in labelled}
    newcomers = [r for r in records if r.localization_only and patient_key(r) not in split_of]
    split_of.update({patient_key(r): r.split for r in assign_splits(newcomers, val_fraction, test_fraction, seed)})
    return [dataclasses.replace(r, split=split_of[patient_key(r)]) for r in records]
