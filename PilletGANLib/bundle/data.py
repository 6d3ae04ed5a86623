"""Data lists for the bundle: the radiographs of a folder (inference) and the records of a dataset (training)."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from monai.data import IterableDataset
from monai.transforms import apply_transform

from ..data.manifest import ManifestRecord, read_manifest
from ..data.sources import build_folder_manifest
from ..dicom.discovery import ERROR_KINDS
from ..dicom.reader import check_radiograph_header, read_dicom_header
from ..engine.workflow import split_records
from ..errors import DataError, PilletGANError, error_kind, error_reason
from ..inspection import expand_inputs
from ..reading import detect_format
from ..text import csv_cell, path_text

__all__ = ["ReadableImages", "image_datalist", "load_records", "record_failure", "training_split"]

logger = logging.getLogger(__name__)


#: Reading problems of a file that should have been a radiograph (``pilletgan batch`` lists them as errors).
_FAILURE_KINDS = frozenset(kind.value for kind in ERROR_KINDS)


def _looks_like_radiograph(path: Path) -> bool:
    """An image file, or a DICOM file whose header describes one greyscale radiograph, or fails to as a broken one
    does (truncated, corrupt, unsupported: kept, so that reading it fails and lists it in ``errors.csv``); anything
    else (notes, DICOMDIR, structured reports) is left out with a warning."""
    try:
        if detect_format(path) in ("dicom", "dicom_candidate"):
            check_radiograph_header(read_dicom_header(path), path)
    except PilletGANError as err:
        if error_kind(err) in _FAILURE_KINDS:
            return True
        logger.warning("left out: %s", err)
        return False
    return True


def image_datalist(dataset_dir: str | os.PathLike, key: str = "image", skip: str | os.PathLike | None = None
                   ) -> list[dict[str, str]]:
    """``[{key: path}, ...]`` for every radiograph under ``dataset_dir`` (walked recursively, sorted, around the
    folder ``skip``: the run's ``output_dir`` when it lies inside, so that a second run does not read the first one's
    maps as radiographs).

    Files are recognised by content, as :func:`~PilletGANLib.load_cxr` does: DICOM files without an
    extension are found; files that are neither images nor DICOM radiographs (notes, DICOMDIR, structured
    reports, ...) are left out with a warning naming them, and broken radiographs are kept for
    :class:`ReadableImages` to list in ``errors.csv``. Only headers are read here.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError("dataset_dir is not a folder", root)
    items = [{key: str(path)} for path in expand_inputs([root], skip) if _looks_like_radiograph(path)]
    if not items:
        raise DataError("no DICOM or image files found in dataset_dir", root)
    return items


class ReadableImages(IterableDataset):
    """The datalist's items through ``transform``, leaving out those that cannot be read.

    A MONAI ``Dataset`` ends the whole run at the first file whose pixels cannot be decoded (the header checks of
    :func:`image_datalist` cannot see that). Here such a file is logged, appended to ``errors_csv`` (``file, kind,
    reason``, as ``pilletgan batch`` writes them) and skipped, and the run goes on. Items are shared between the
    DataLoader's workers as :class:`monai.data.IterableDataset` shares them, so they arrive out of datalist order.

    Args:
        data: ``[{key: path}, ...]`` (:func:`image_datalist`).
        transform: the preprocessing, from reading the file on.
        errors_csv: where the files left out are listed (written anew, header only when none is); None: logged only.
        key: the item key holding the file path.
    """

    def __init__(self, data: Sequence[dict[str, Any]], transform: Callable | None = None,
                 errors_csv: str | os.PathLike | None = None, key: str = "image") -> None:
        super().__init__(data, self._read)  # MONAI's iteration (and worker split) applies the guarded preprocessing
        self.preprocessing, self.key = transform, key
        self.errors_csv = Path(errors_csv) if errors_csv is not None else None
        if self.errors_csv is not None:
            self.errors_csv.parent.mkdir(parents=True, exist_ok=True)
            with open(self.errors_csv, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerow(("file", "kind", "reason"))

    def __iter__(self) -> Iterator[Any]:
        return (item for item in super().__iter__() if item is not None)

    def _read(self, item: dict[str, Any]) -> Any:
        """The item through the preprocessing; None after recording why it cannot be read."""
        try:
            return apply_transform(self.preprocessing, item) if self.preprocessing is not None else item
        except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is recorded and the run goes on
            self._leave_out(item, err)
            return None

    def _leave_out(self, item: dict[str, Any], err: Exception) -> None:
        record_failure(self.errors_csv, str(item.get(self.key, "")), err)


def record_failure(errors_csv: str | os.PathLike | None, file: str | os.PathLike, err: BaseException,
                   what: str = "left out") -> None:
    """Log ``file``'s failure ``err`` and append it to ``errors_csv`` as ``file, kind, reason`` (the kinds of
    ``pilletgan batch``; MONAI's ``RuntimeError`` wrapping is looked through to the PilletGAN error inside)."""
    cause: BaseException = err
    while cause.__cause__ is not None and not isinstance(cause, PilletGANError):  # MONAI wraps in RuntimeError
        cause = cause.__cause__
    name, kind, reason = path_text(str(file)), error_kind(cause), error_reason(cause)
    logger.warning("%s: %s: %s (%s)", what, name, reason, kind)
    if errors_csv is not None:  # one short append per line: workers do not interleave their lines
        with open(errors_csv, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow((csv_cell(name), kind, csv_cell(reason)))


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
