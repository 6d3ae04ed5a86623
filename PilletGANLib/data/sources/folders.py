"""Manifest from class folders: ``SRC/<anything>/<class folder>/*.png|jpg|dcm|...``.

An image's label comes from the nearest folder above it whose name names a class. With an explicit
mapping (``{"healthy": ["0_normal"], "disease": ["1_abnormal"]}``) only those folder names count
(case-insensitive). Without one, a folder name starting with ``1_`` or containing ``abnormal``,
``pneumonia``, ``disease``, ``positive`` or ``opacity`` is disease; otherwise one starting with ``0_``
or containing ``normal``, ``healthy`` or ``negative`` is healthy. Images under no class folder are
left out and counted.

Existing ``train``/``valid`` folders are ignored: such splits are rarely by patient, so the images
are split again by patient. The patient id is the first group of ``patient_pattern`` matched
against the file name (default ``^(\\d+)_``: NIH names such as ``00000193_019.png`` give
``00000193``), and the file stem where it does not match.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ...errors import ConfigurationError
from ..manifest import LABELS, ManifestRecord
from ..splits import assign_splits
from .common import finish_build, index_images

__all__ = ["DEFAULT_PATIENT_PATTERN", "build_folder_manifest", "folder_label"]

DEFAULT_PATIENT_PATTERN = r"^(\d+)_"
_DISEASE_WORDS = ("abnormal", "pneumonia", "disease", "positive", "opacity")
_HEALTHY_WORDS = ("normal", "healthy", "negative")


def folder_label(name: str, class_folders: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """The label a folder name stands for, or None (see the module docstring for the rules)."""
    lowered = name.lower()
    if class_folders is not None:
        for label, names in class_folders.items():
            if lowered in (n.lower() for n in names):
                return label
        return None
    if lowered.startswith("1_") or any(word in lowered for word in _DISEASE_WORDS):
        return "disease"
    if lowered.startswith("0_") or any(word in lowered for word in _HEALTHY_WORDS):
        return "healthy"
    return None


def _patient_parser(pattern: str | None) -> Callable[[Path], str]:
    if pattern is None:
        return lambda path: path.stem
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ConfigurationError(f"patient pattern {pattern!r} is not a valid regular expression ({err})") from err

    def parse(path: Path) -> str:
        match = regex.search(path.name)
        if match is None:
            return path.stem
        return match.group(1) if regex.groups else match.group(0)

    return parse


def build_folder_manifest(src: str | Path, class_folders: Mapping[str, Sequence[str]] | None = None,
                          patient_pattern: str | None = DEFAULT_PATIENT_PATTERN, val_fraction: float = 0.15,
                          test_fraction: float = 0.0, seed: int = 0,
                          skipped: Counter[str] | None = None) -> list[ManifestRecord]:
    """Build manifest records from a tree of class folders.

    Args:
        src: the root folder.
        class_folders: label -> folder names; the keyword rules when None.
        patient_pattern: regular expression whose first group (or whole match) in the file name is
            the patient id; None = one patient per image.
        val_fraction, test_fraction, seed: patient-level split (see :func:`assign_splits`).
        skipped: a counter that receives the number of images left out, per reason.
    """
    src = Path(src)
    skipped = Counter() if skipped is None else skipped
    if class_folders is not None:
        unknown = sorted(set(class_folders) - set(LABELS))
        if unknown or not class_folders:
            raise ConfigurationError(f"class folder labels must be among {LABELS}, got {sorted(class_folders)}")
    patient_of = _patient_parser(patient_pattern)
    records = []
    for path in sorted(index_images(src, by="path").values()):
        labels = (folder_label(folder, class_folders) for folder in reversed(path.relative_to(src).parts[:-1]))
        label = next((lab for lab in labels if lab is not None), None)
        if label is None:
            skipped["not under a class folder"] += 1
            continue
        records.append(ManifestRecord(image=path, label=label, patient_id=patient_of(path)))
    finish_build(records, skipped, src, "class-folder")
    return assign_splits(records, val_fraction, test_fraction, seed)
