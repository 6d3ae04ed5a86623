"""Data lists for the bundle: the radiographs of a folder (inference) and the records of a dataset (training)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..data.manifest import ManifestRecord, read_manifest
from ..data.sources import build_folder_manifest
from ..dicom.reader import check_radiograph_header, read_dicom_header
from ..engine.workflow import split_records
from ..errors import DataError, PilletGANError
from ..inspection import expand_inputs
from ..reading import detect_format

__all__ = ["image_datalist", "load_records", "training_split"]

logger = logging.getLogger(__name__)


def _looks_like_radiograph(path: Path) -> bool:
    """An image file, or a DICOM file whose header describes one greyscale radiograph; others are logged."""
    try:
        if detect_format(path) in ("dicom", "dicom_candidate"):
            check_radiograph_header(read_dicom_header(path), path)
    except PilletGANError as err:
        logger.warning("left out: %s", err)
        return False
    return True


def image_datalist(dataset_dir: str | os.PathLike, key: str = "image") -> list[dict[str, str]]:
    """``[{key: path}, ...]`` for every radiograph under ``dataset_dir`` (walked recursively, sorted).

    Files are recognised by content, as :func:`~PilletGANLib.load_cxr` does: DICOM files without an
    extension are found; files that are neither images nor DICOM radiographs (notes, DICOMDIR, structured
    reports, ...) are left out with a warning naming them. Only headers are read here.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError("dataset_dir is not a folder", root)
    items = [{key: str(path)} for path in expand_inputs([root]) if _looks_like_radiograph(path)]
    if not items:
        raise DataError("no DICOM or image files found in dataset_dir", root)
    return items


def load_records(dataset_dir: str | os.PathLike, manifest: str | os.PathLike | None = None) -> list[ManifestRecord]:
    """The images of a dataset: the ``manifest`` CSV when given, else the class folders under ``dataset_dir``.

    Class folders follow :func:`~PilletGANLib.data.build_folder_manifest` (``0_normal``/``1_abnormal``,
    ``healthy``/``pneumonia``...), split by patient into train and val.
    """
    if manifest:
        return read_manifest(manifest, check_files=True)
    return build_folder_manifest(dataset_dir)


def training_split(records: list[ManifestRecord], seed: int = 0) -> tuple[list[ManifestRecord], list[ManifestRecord]]:
    """Training and validation records (split by patient when the records have no split).

    Raises :class:`DataError` when there is no validation image: the bundle validates during training
    and calibrates the exported model's mask threshold on the healthy validation images.
    """
    train, val = split_records(records, seed)
    if not val:
        raise DataError("the dataset has no validation images (split 'val'): the bundle validates during training "
                        "and calibrates the mask threshold on healthy validation images")
    return train, val
