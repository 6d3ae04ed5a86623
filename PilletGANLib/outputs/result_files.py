"""All per-image outputs of one :class:`~PilletGANLib.inference.LesionResult` in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, OutputError
from .naming import FORMATS, result_file_names
from .overlay import NO_FINDING, OverlayCaption, write_overlay_png
from .records import write_record_json
from .segnrrd import write_seg_nrrd
from .volumes import write_volume

__all__ = ["DEFAULT_FORMATS", "overlay_caption", "write_result_files"]

#: One heat map (NRRD), one mask (the Slicer segmentation), the overlay and the record; ``nifti`` adds both maps as
#: NIfTI for tools that want them.
DEFAULT_FORMATS = ("nrrd", "seg.nrrd", "png", "json")


def overlay_caption(result: Any) -> OverlayCaption:
    """The overlay legend of a :class:`~PilletGANLib.inference.LesionResult`: its score and finding (with the
    detection threshold and specificity), mask threshold and warnings."""
    calibration = result.calibration
    finding = result.finding or NO_FINDING
    return OverlayCaption(score=float(result.score), threshold=float(result.threshold), finding=finding,
                          detection_threshold=calibration.detection_threshold,
                          detection_specificity=calibration.detection_specificity,
                          warnings=tuple(result.meta.get("warnings") or ()))


def _check_stem(stem: str, out_dir: Path) -> None:
    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0") or stem != stem.strip():
        raise OutputError(f"{stem!r} is not a plain file-name stem (use PilletGANLib.outputs.output_stem)", out_dir)


def write_result_files(result: Any, out_dir: str | os.PathLike, stem: str,
                       formats: Sequence[str] = DEFAULT_FORMATS, truth_boxes: Sequence[Any] | None = None,
                       extra: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write the heat map, mask, overlay and record of one image into ``out_dir``.

    Files (``stem`` = :func:`~PilletGANLib.outputs.output_stem` of the input): ``<stem>_heatmap.nii.gz`` and
    ``<stem>_mask.nii.gz`` (``nifti``), ``<stem>_heatmap.nrrd`` (``nrrd``), ``<stem>.seg.nrrd`` (``seg.nrrd``),
    ``<stem>_overlay.png`` (``png``) and ``<stem>.json`` (``json``, written last, listing the others). Each file
    is written under a temporary name and renamed when complete.

    Args:
        result: a :class:`~PilletGANLib.inference.LesionResult` (arrays in the source grid; ``meta`` may hold
            ``pixel_spacing`` as ``[row, column]`` mm and the source's grid as ``ijk_to_lps``).
        out_dir: output folder, created if missing.
        stem: file-name stem.
        formats: any of ``nifti``, ``nrrd``, ``seg.nrrd``, ``png``, ``json``.
        truth_boxes: reference boxes drawn in green on the overlay.
        extra: more keys for the JSON record.

    Returns:
        Output kind (``heatmap_nifti``, ``mask_nifti``, ``heatmap_nrrd``, ``seg_nrrd``, ``overlay_png``,
        ``json``) -> path, for the kinds written.

    Raises:
        ConfigurationError: an unknown format.
        OutputError: a bad stem or a file that cannot be written.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigurationError(f"unknown output format(s) {unknown}; choose from {sorted(FORMATS)}")
    out_dir = Path(out_dir)
    _check_stem(stem, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"the output folder cannot be created ({err.strerror or err})", out_dir) from err
    names = result_file_names(stem)
    kinds = [kind for fmt in FORMATS if fmt in formats for kind in FORMATS[fmt]]
    paths = {kind: out_dir / names[kind] for kind in kinds}
    spacing, grid = result.meta.get("pixel_spacing"), result.meta.get("ijk_to_lps")
    heatmap = np.asarray(result.heatmap, dtype=np.float32)
    mask = np.asarray(result.mask, dtype=bool)
    writers = {
        "heatmap_nifti": lambda p: write_volume(heatmap, p, spacing, grid),
        "mask_nifti": lambda p: write_volume(mask, p, spacing, grid),
        "heatmap_nrrd": lambda p: write_volume(heatmap, p, spacing, grid),
        "seg_nrrd": lambda p: write_seg_nrrd(mask, p, spacing, grid),
        "overlay_png": lambda p: write_overlay_png(result.image, heatmap, p, boxes=result.boxes,
                                                   truth_boxes=truth_boxes, threshold=result.threshold,
                                                   caption=overlay_caption(result)),
    }
    for kind in kinds:
        if kind != "json":
            writers[kind](paths[kind])
    if "json" in paths:
        listed = {kind: path.name for kind, path in paths.items()}
        write_record_json(result, paths["json"], extra=extra, files=listed)
    return paths
