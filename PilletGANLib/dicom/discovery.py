"""Find the chest radiographs in a PACS export tree, reading headers only.

Exports are messy: files with or without ``.dcm``, DICOMDIR indexes, CT and reports mixed in,
broken or unreadable files, symbolic links that loop. :func:`discover` walks the tree (following
folder links, each real folder once), reads every file's header with deferred pixel data, keeps
the radiographs the :class:`SelectionRules` select and records every other file as a
:class:`SkippedFile` with the kind and reason it was skipped. Nothing is decoded and nothing is
written. The result is deterministic: the same tree gives the same lists in the same order.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, MediaStorageDirectoryStorage
from tqdm import tqdm

from ..errors import (
    ConfigurationError,
    CorruptFileError,
    FileNotFoundInputError,
    InputFileError,
    MissingPixelDataError,
    NotAnImageError,
    PilletGANError,
    TruncatedFileError,
    UnrecognizedFormatError,
)
from ..text import error_excerpt, header_excerpt
from .attributes import repair_source_header
from .header_values import descriptive_value
from .orientation import lateral_view
from .reader import check_decodable, check_element_lengths, check_radiograph_header, read_dicom_header

__all__ = ["ERROR_KINDS", "DicomInstance", "DiscoveryResult", "SelectionRules", "SkipKind", "SkippedFile", "discover",
           "examine_file"]

logger = logging.getLogger(__name__)

#: Components of a DICOMDIR Referenced File ID: the standard allows 1-8 of A-Z, 0-9, _ (lower case tolerated).
_FILE_ID_COMPONENT = re.compile(r"^[A-Za-z0-9_]{1,8}$")


class SkipKind(str, Enum):
    """Why a file of the export is not among the selected radiographs.

    The values that name a problem with a file are the ``kind`` of the :mod:`PilletGANLib.errors` class
    the reader raises for it, so ``inspect``, ``infer`` and ``batch`` report one file the same way.
    """

    NOT_DICOM = "not_dicom"  # neither DICOM nor anything the reader knows
    DICOMDIR = "dicomdir"  # a DICOMDIR index; its referenced files are examined instead
    NOT_SELECTED = "not_selected"  # a valid image the selection rules exclude (e.g. CT, lateral view)
    NOT_AN_IMAGE = "not_an_image"  # SR, presentation state, key object, ...: no image to analyse
    NO_PIXEL_DATA = "no_pixel_data"  # an image object without its Pixel Data
    EMPTY = "empty"  # a file of 0 bytes
    TRUNCATED = "truncated"  # ends before the data its header announces
    CORRUPT = "corrupt"  # cannot be parsed, claims what it does not hold, or lacks valid UIDs to reference it
    UNSUPPORTED = "unsupported"  # multi-frame, colour, absurd size, no decoder for the transfer syntax
    UNREADABLE = "unreadable"  # permission denied, I/O error, broken symbolic link, unlistable folder
    NOT_A_FILE = "not_a_file"  # FIFO, socket or device node
    SYMLINK_LOOP = "symlink_loop"  # a folder link to one of its own ancestors (not followed)
    DUPLICATE = "duplicate"  # a second path to a file or folder already found, or a repeated SOP Instance UID
    MISSING = "missing"  # listed in a DICOMDIR but absent


#: Skips that are failures (a file that should have been analysed and could not be): a batch run lists them
#: in ``errors.csv`` and exits 1. Any other skip is expected in an export and goes to ``skipped.csv``, except a
#: file whose name says DICOM (``.dcm``, ``DICOMDIR``...) but whose content is not: that is an error too.
ERROR_KINDS = frozenset({SkipKind.EMPTY, SkipKind.TRUNCATED, SkipKind.CORRUPT, SkipKind.UNSUPPORTED,
                         SkipKind.UNREADABLE, SkipKind.NO_PIXEL_DATA, SkipKind.MISSING})
#: Names that claim DICOM content: these suffixes (any case) and the DICOMDIR index name.
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_DICOMDIR_NAME = "DICOMDIR"


#: Keys of :meth:`SelectionRules.parse` and the field each one sets.
_RULE_KEYS = {"modality": "modalities", "modalities": "modalities", "body_part": "body_parts", "body_parts": "body_parts",
              "bodypart": "body_parts", "view": "view_positions", "views": "view_positions",
              "view_position": "view_positions", "view_positions": "view_positions",
              "for_processing": "include_for_processing", "laterals": "include_laterals",
              "lateral": "include_laterals"}


def _kind_of(err: PilletGANError) -> SkipKind:
    """The skip kind of a reading error: its taxonomy ``kind`` (``corrupt`` for a kind discovery does not list)."""
    try:
        return SkipKind(err.kind)
    except ValueError:
        return SkipKind.CORRUPT


@dataclass(frozen=True)
class SelectionRules:
    """Which images of an export to analyse; ``None`` means "any value".

    Values compare case-insensitively with Modality, Body Part Examined and View Position; an image
    without the attribute is excluded by a rule on it. DX "For Processing" (raw detector) images
    are excluded unless ``include_for_processing``, and lateral views (View Position LL or RL, or a Patient
    Orientation with an anterior or posterior direction where View Position does not say AP or PA: the model reads
    frontal chests) unless ``include_laterals``.
    """

    modalities: tuple[str, ...] | None = ("CR", "DX")
    body_parts: tuple[str, ...] | None = None
    view_positions: tuple[str, ...] | None = None
    include_for_processing: bool = False
    include_laterals: bool = False

    def __post_init__(self) -> None:
        for name in ("modalities", "body_parts", "view_positions"):
            values = getattr(self, name)
            if values is not None:
                if isinstance(values, str):
                    values = (values,)
                object.__setattr__(self, name, tuple(sorted({str(v).strip().upper() for v in values if str(v).strip()})))
                if not getattr(self, name):
                    raise ConfigurationError(f"selection rule '{name}' has no values; use None (or '*') for any value")

    @classmethod
    def parse(cls, text: str | None) -> SelectionRules:
        """Rules from a command-line string such as ``"modality=CR,DX;body_part=CHEST;view=PA,AP"``.

        Keys: ``modality``, ``body_part``, ``view`` (or their plurals), ``for_processing=yes|no``, ``laterals=yes|no``;
        the value ``*`` means any value. Keys not given keep their defaults; empty text gives the defaults.
        """
        settings: dict[str, Any] = {}
        for clause in (c.strip() for c in (text or "").split(";")):
            if not clause:
                continue
            key, sep, value = clause.partition("=")
            name = _RULE_KEYS.get(key.strip().lower().replace("-", "_"))
            if not sep or name is None:
                raise ConfigurationError(
                    f"selection rule '{clause}' is not KEY=VALUES with KEY one of modality, body_part, view, "
                    "for_processing, laterals (example: 'modality=CR,DX;body_part=CHEST;view=PA,AP')")
            if name in settings:
                raise ConfigurationError(f"selection rule key '{key.strip()}' is given twice")
            value = value.strip()
            if name in ("include_for_processing", "include_laterals"):
                if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                    raise ConfigurationError(f"{key.strip()} must be yes or no, not '{value}'")
                settings[name] = value.lower() in ("yes", "true", "1")
            elif value.lower() in ("*", "any"):
                settings[name] = None
            else:
                settings[name] = tuple(value.split(","))
        return cls(**settings)

    def __str__(self) -> str:
        """The rules in :meth:`parse` syntax (``parse(str(rules)) == rules``)."""
        def values(v: tuple[str, ...] | None) -> str:
            return "*" if v is None else ",".join(v)
        return (f"modality={values(self.modalities)};body_part={values(self.body_parts)};"
                f"view={values(self.view_positions)};for_processing={'yes' if self.include_for_processing else 'no'};"
                f"laterals={'yes' if self.include_laterals else 'no'}")

    def rejection(self, ds: Dataset) -> str | None:
        """Why the rules exclude the image with header ``ds``, or ``None`` when they select it."""
        for values, keyword, label in ((self.modalities, "Modality", "Modality"),
                                       (self.body_parts, "BodyPartExamined", "Body Part Examined"),
                                       (self.view_positions, "ViewPosition", "View Position")):
            if values is None:
                continue
            actual = str(ds.get(keyword, "") or "").strip().upper()
            if actual not in values:
                shown = header_excerpt(actual) if actual else "missing"
                return f"{label} {shown} is not selected (selected: {', '.join(values)})"
        if not self.include_for_processing and _is_for_processing(ds):
            return "a 'For Processing' (raw detector) image; only 'For Presentation' images are selected"
        if not self.include_laterals:
            lateral = lateral_view(descriptive_value(ds, "PatientOrientation"), descriptive_value(ds, "ViewPosition"))
            if lateral is not None:
                return (f"a lateral view ({lateral}); the model reads frontal chest radiographs, so laterals are not "
                        "selected (laterals=yes selects them)")
        return None


def _is_for_processing(ds: Dataset) -> bool:
    intent = str(ds.get("PresentationIntentType", "") or "").strip().upper()
    sop_name = UID(str(ds.get("SOPClassUID", ""))).name
    return intent == "FOR PROCESSING" or sop_name.endswith("For Processing")


@dataclass(frozen=True)
class DicomInstance:
    """A selected radiograph, as its header describes it."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    modality: str
    rows: int
    columns: int
    transfer_syntax: str | None
    photometric: str
    body_part: str | None
    view_position: str | None
    instance_number: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


@dataclass(frozen=True)
class SkippedFile:
    """A file (or folder) of the export that is not analysed, and why.

    ``error`` says whether it is a failure (see :data:`ERROR_KINDS`) rather than something an export is
    expected to hold.
    """

    path: Path
    kind: SkipKind
    reason: str
    error: bool | None = None

    def __post_init__(self) -> None:
        if self.error is None:
            object.__setattr__(self, "error", self.kind in ERROR_KINDS)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind.value, "reason": self.reason, "error": self.error}


@dataclass
class DiscoveryResult:
    """Selected radiographs (sorted by study, series, instance number, path) and skipped files (by path)."""

    root: Path
    rules: SelectionRules
    instances: list[DicomInstance] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def by_study(self) -> dict[str, list[DicomInstance]]:
        """Instances grouped by Study Instance UID, in the order of :attr:`instances`."""
        return _group(self.instances, "study_instance_uid")

    def by_series(self) -> dict[str, list[DicomInstance]]:
        """Instances grouped by Series Instance UID, in the order of :attr:`instances`."""
        return _group(self.instances, "series_instance_uid")

    def skip_counts(self) -> dict[str, int]:
        """Number of skipped files per :class:`SkipKind` value."""
        return dict(sorted(Counter(s.kind.value for s in self.skipped).items()))


def _group(instances: Iterable[DicomInstance], attribute: str) -> dict[str, list[DicomInstance]]:
    groups: dict[str, list[DicomInstance]] = {}
    for instance in instances:
        groups.setdefault(getattr(instance, attribute), []).append(instance)
    return groups


@dataclass(frozen=True)
class _Found:
    """Outcome of examining one file: an instance, a skip, or DICOMDIR references; plus the file's identity."""

    path: Path
    file_key: tuple[int, int] | None
    instance: DicomInstance | None = None
    skip: SkippedFile | None = None
    references: tuple[Path, ...] = ()


def discover(root: str | os.PathLike, rules: SelectionRules | None = None, progress: bool = False) -> DiscoveryResult:
    """Walk ``root`` (a folder, or a single file) and sort every file into selected radiographs and skips.

    Paths in the result are absolute (symbolic links kept as walked). Raises
    :class:`FileNotFoundInputError` when ``root`` does not exist; every problem with a file inside it
    becomes a :class:`SkippedFile` instead.
    """
    root = Path(os.path.abspath(root))
    rules = rules or SelectionRules()
    if not root.exists():
        raise FileNotFoundInputError("the export folder does not exist", root)
    result = DiscoveryResult(root=root, rules=rules)
    candidates = _walk(root, result.skipped) if root.is_dir() else [root]
    found: list[_Found] = []
    queued = {str(p) for p in candidates}
    queue = deque(sorted(candidates))
    with tqdm(total=len(queue), desc="discover", unit="file", disable=not progress) as bar:
        while queue:
            outcome = _examine(queue.popleft(), rules)
            found.append(outcome)
            bar.update(1)
            for reference in outcome.references:
                if str(reference) not in queued and os.path.lexists(reference):
                    queued.add(str(reference))
                    queue.append(reference)
                    bar.total += 1
    _collect(found, result)
    logger.info("discovered %d radiographs in %s; skipped %s", len(result.instances), root, result.skip_counts())
    return result


def examine_file(path: str | os.PathLike, rules: SelectionRules | None = None) -> DicomInstance | SkippedFile:
    """Sort one file as :func:`discover` would: the selected radiograph, or why it is skipped (header only).

    For files that arrive one at a time (retrieved from or sent by a PACS); a DICOMDIR is a skip here,
    its references are not followed.
    """
    found = _examine(Path(os.path.abspath(path)), rules or SelectionRules())
    return found.instance if found.instance is not None else found.skip


def _walk(root: Path, skipped: list[SkippedFile]) -> list[Path]:
    """All file paths under ``root``; folder links followed once per real folder, loops recorded and cut."""
    files: list[Path] = []
    root_real = os.path.realpath(root)
    root_stat = os.stat(root)
    visited = {(root_stat.st_dev, root_stat.st_ino)}

    def unlistable(err: OSError) -> None:
        skipped.append(SkippedFile(Path(err.filename or root), SkipKind.UNREADABLE,
                                   f"the folder cannot be listed ({err.strerror or err})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=True):
        here_real = os.path.realpath(dirpath)
        kept = []
        for name in sorted(dirnames):
            skip = _folder_skip(Path(dirpath, name), here_real, root_real, visited)
            if skip is None:
                kept.append(name)
            else:
                skipped.append(skip)
        dirnames[:] = kept
        files.extend(Path(dirpath, name) for name in filenames)
    return files


def _folder_skip(folder: Path, parent_real: str, root_real: str, visited: set[tuple[int, int]]) -> SkippedFile | None:
    """Why ``folder`` must not be walked (a loop, a second path to a walked folder), or ``None``."""
    try:
        info = os.stat(folder)
    except OSError as err:
        return SkippedFile(folder, SkipKind.UNREADABLE, f"the folder cannot be opened ({err.strerror or err})")
    if folder.is_symlink():
        target = os.path.realpath(folder)
        if _is_within(parent_real, target):
            return SkippedFile(folder, SkipKind.SYMLINK_LOOP,
                               "symbolic link to one of its own ancestor folders (a loop); not followed")
        if _is_within(target, root_real):
            return SkippedFile(folder, SkipKind.DUPLICATE,
                               "symbolic link to a folder inside the export, which is walked at its own path")
    key = (info.st_dev, info.st_ino)
    if key in visited:
        return SkippedFile(folder, SkipKind.DUPLICATE, "the same folder was already walked through another path")
    visited.add(key)
    return None


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _examine(path: Path, rules: SelectionRules) -> _Found:
    """Classify one file from its header."""
    try:
        info = os.stat(path)
    except OSError as err:
        why = "broken symbolic link (its target does not exist)" if path.is_symlink() else \
            f"the file cannot be accessed ({err.strerror or err})"
        return _Found(path, None, skip=SkippedFile(path, SkipKind.UNREADABLE, why))
    key = (info.st_dev, info.st_ino)
    if not stat.S_ISREG(info.st_mode):
        return _Found(path, key, skip=SkippedFile(path, SkipKind.NOT_A_FILE,
                                                  "not a regular file (FIFO, socket or device); not opened"))
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as err:
        return _Found(path, key, skip=SkippedFile(path, SkipKind.UNREADABLE,
                                                  f"the file cannot be read ({err.strerror or err})"))
    try:
        header = read_dicom_header(path, check_lengths=False)
        if _is_dicomdir(header):
            return _dicomdir(path, key)
        return _Found(path, key, instance=_select(header, path, rules))
    except UnrecognizedFormatError as err:
        return _Found(path, key, skip=_not_dicom(path, err))
    except InputFileError as err:
        return _Found(path, key, skip=SkippedFile(path, _kind_of(err), err.reason))
    except _NotSelectedError as err:
        return _Found(path, key, skip=SkippedFile(path, SkipKind.NOT_SELECTED, str(err)))
    except Exception as err:  # noqa: BLE001 - a malformed file must never stop the walk; pydicom raises many types
        return _Found(path, key, skip=SkippedFile(path, SkipKind.CORRUPT,
                                                  f"the header cannot be parsed ({error_excerpt(err)})"))


def _not_dicom(path: Path, err: UnrecognizedFormatError) -> SkippedFile:
    """A file that is not DICOM: expected (a README) unless its name says it is DICOM, then an error."""
    if path.name.upper() == _DICOMDIR_NAME:
        return SkippedFile(path, SkipKind.NOT_DICOM, "named DICOMDIR but not a DICOMDIR index: its content is not "
                                                     "DICOM, so the files of this media cannot be listed", error=True)
    if path.name.lower().endswith(_DICOM_SUFFIXES):
        return SkippedFile(path, SkipKind.NOT_DICOM, f"named like a DICOM file ('{path.suffix}') but its content is "
                                                     f"not DICOM ({err.reason})", error=True)
    return SkippedFile(path, SkipKind.NOT_DICOM, err.reason)


class _NotSelectedError(Exception):
    """A valid image the selection rules exclude."""


def _select(header: Dataset, path: Path, rules: SelectionRules) -> DicomInstance:
    """The instance when the header is a selected, readable radiograph; raises otherwise.

    Objects without an image (SR, no Pixel Data) are reported as such, and so is a header too damaged to be read
    (a wrong length or transfer syntax makes the rest of the file one garbled element, whose missing Modality the
    rules would otherwise report); for other images the selection rules come first, so a CT is "not selected"
    rather than, say, "multi-frame".
    """
    problem: InputFileError | None = None
    try:
        check_radiograph_header(header, path)
    except (NotAnImageError, MissingPixelDataError, TruncatedFileError, CorruptFileError):
        raise
    except InputFileError as err:
        problem = err
    rejection = rules.rejection(header)
    if rejection:
        raise _NotSelectedError(rejection)
    if problem is not None:
        raise problem
    check_element_lengths(header, path)
    check_decodable(header, path)
    uids = {k: str(header.get(k, "") or "").strip() for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise CorruptFileError(f"the header lacks {', '.join(missing)}; results could not reference the image", path)
    repair_source_header(header, path)  # refuses invalid UIDs and sizes now, before any analysis or output folder
    syntax = header.file_meta.get("TransferSyntaxUID") if hasattr(header, "file_meta") else None
    return DicomInstance(
        path=path,
        sop_instance_uid=uids["SOPInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        sop_class_uid=str(header.get("SOPClassUID", "")),
        modality=str(header.get("Modality", "")).strip().upper(),
        rows=int(header.Rows),
        columns=int(header.Columns),
        transfer_syntax=str(syntax) if syntax else None,
        photometric=str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        body_part=str(header.get("BodyPartExamined", "") or "").strip() or None,
        view_position=str(header.get("ViewPosition", "") or "").strip() or None,
        instance_number=_integer(header.get("InstanceNumber")),
    )


def _integer(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_dicomdir(header: Dataset) -> bool:
    meta = getattr(header, "file_meta", None)
    return meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage


def _dicomdir(path: Path, key: tuple[int, int]) -> _Found:
    """A DICOMDIR: its referenced files (resolved case-insensitively when needed) are examined in turn.

    Directory records are read directly rather than through :class:`pydicom.fileset.FileSet`,
    which drops missing files with a warning where discovery must report them.
    """
    try:
        records = pydicom.dcmread(path, force=True).get("DirectoryRecordSequence", [])
    except Exception as err:  # noqa: BLE001 - pydicom raises many types for a damaged index
        return _Found(path, key, skip=SkippedFile(path, SkipKind.CORRUPT, "a DICOMDIR whose directory records cannot "
                                                  f"be read ({error_excerpt(err)})"))
    references, invalid = [], 0
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        if not all(_FILE_ID_COMPONENT.match(p) for p in parts):
            invalid += 1
            continue
        references.append(_resolve_case(path.parent, parts))
    note = f"; {invalid} invalid Referenced File IDs ignored" if invalid else ""
    skip = SkippedFile(path, SkipKind.DICOMDIR, f"DICOMDIR index listing {len(references)} files, "
                                                f"which are examined themselves{note}")
    return _Found(path, key, skip=skip, references=tuple(references))


def _resolve_case(base: Path, parts: list[str]) -> Path:
    """``base/parts...``, matching each component case-insensitively when the exact name is absent."""
    path = base
    for part in parts:
        exact = path / part
        if not exact.exists() and path.is_dir():
            match = next((entry for entry in sorted(os.listdir(path)) if entry.upper() == part.upper()), None)
            exact = path / match if match else exact
        path = exact
    return path


def _collect(outcomes: Iterable[_Found], result: DiscoveryResult) -> None:
    """Fill ``result``: the first path of each file and SOP Instance UID wins (real paths before links)."""
    by_file: dict[tuple[int, int], Path] = {}
    by_uid: dict[str, Path] = {}
    instances: list[DicomInstance] = []
    skipped = list(result.skipped)
    for outcome in sorted(outcomes, key=lambda o: (o.path.is_symlink(), str(o.path))):
        if outcome.skip is not None:
            skipped.append(outcome.skip)
        if outcome.instance is None:
            if outcome.references:
                skipped.extend(SkippedFile(ref, SkipKind.MISSING, f"listed in the DICOMDIR {outcome.path} but absent")
                               for ref in outcome.references if not os.path.lexists(ref))
            continue
        instance = outcome.instance
        if outcome.file_key in by_file:
            skipped.append(SkippedFile(instance.path, SkipKind.DUPLICATE,
                                       f"the same file as {by_file[outcome.file_key]} (linked)"))
        elif instance.sop_instance_uid in by_uid:
            skipped.append(SkippedFile(instance.path, SkipKind.DUPLICATE,
                                       f"SOP Instance UID already found in {by_uid[instance.sop_instance_uid]}"))
        else:
            by_file[outcome.file_key] = instance.path
            by_uid[instance.sop_instance_uid] = instance.path
            instances.append(instance)
    result.instances = sorted(instances, key=lambda i: (i.study_instance_uid, i.series_instance_uid,
                                                        i.instance_number if i.instance_number is not None else -1,
                                                        str(i.path)))
    result.skipped = sorted(skipped, key=lambda s: (str(s.path), s.kind.value))
