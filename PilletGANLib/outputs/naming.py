"""File names of the per-image outputs: one stem per input, one fixed suffix per output kind."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import PurePath

__all__ = ["FORMATS", "MAX_STEM_LENGTH", "RESULT_SUFFIXES", "name_digest", "output_stem", "result_file_names",
           "whole_name_stem"]

#: Output kind -> file-name suffix appended to the stem.
RESULT_SUFFIXES: dict[str, str] = {
    "heatmap_nifti": "_heatmap.nii.gz",
    "mask_nifti": "_mask.nii.gz",
    "heatmap_nrrd": "_heatmap.nrrd",
    "seg_nrrd": ".seg.nrrd",
    "overlay_png": "_overlay.png",
    "json": ".json",
}

#: Format names accepted by ``write_result_files`` -> the output kinds each one writes.
FORMATS: dict[str, tuple[str, ...]] = {
    "nifti": ("heatmap_nifti", "mask_nifti"),
    "nrrd": ("heatmap_nrrd",),
    "seg.nrrd": ("seg_nrrd",),
    "png": ("overlay_png",),
    "json": ("json",),
}

# Suffixes removed from an input file name to make its stem (longest first; case-insensitive).
_INPUT_SUFFIXES = (".nii.gz", ".dicom", ".jpeg", ".tiff", ".nrrd", ".nhdr", ".nii", ".dcm", ".png", ".jpg",
                   ".tif", ".mha", ".mhd")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: The longest stem: with the longest suffix (``_heatmap.nii.gz``), a ``_2`` for a repeated stem and the hidden
#: temporary name of :func:`~PilletGANLib.outputs.atomic_path` (31 more characters), a name stays well inside the
#: 255 bytes a file name may have.
MAX_STEM_LENGTH = 160


def output_stem(path: str | os.PathLike) -> str:
    """The stem that names the outputs of the input ``path``.

    Known image suffixes (``.dcm``, ``.png``, ``.nii.gz``, ...) are removed; any other name is kept whole,
    so DICOM files named by their UID (``1.2.840....``) keep every component. Characters other than
    letters, digits, ``.``, ``_`` and ``-`` become ``_``, so the stem is always a plain file name. A stem longer
    than :data:`MAX_STEM_LENGTH` keeps its beginning and ends with 8 hex digits of the whole name's SHA-256, so that
    the output names of a long input name can be written and two long names differing at their end stay apart.
    """
    name = PurePath(path).name
    lower = name.lower()
    for suffix in _INPUT_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return _safe(name)


def whole_name_stem(path: str | os.PathLike) -> str:
    """The stem of ``path`` with its suffix kept (``x.png`` -> ``x.png``), for inputs whose :func:`output_stem`
    collide (``x.dcm`` beside its preview ``x.png``); made safe as :func:`output_stem` does."""
    return _safe(PurePath(path).name)


def _safe(name: str) -> str:
    stem = _UNSAFE.sub("_", name).strip(".") or "image"
    if len(stem) <= MAX_STEM_LENGTH:
        return stem
    return f"{stem[:MAX_STEM_LENGTH - 9]}-{name_digest(name)}"


def name_digest(name: str) -> str:
    """8 hex digits of the SHA-256 of a file name (undecodable bytes kept), to tell apart names made equal."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def result_file_names(stem: str) -> dict[str, str]:
    """Output kind -> file name for ``stem`` (see :data:`RESULT_SUFFIXES`)."""
    return {kind: f"{stem}{suffix}" for kind, suffix in RESULT_SUFFIXES.items()}
