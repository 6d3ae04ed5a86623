"""The lesion mask as a Slicer-native ``.seg.nrrd`` segmentation with name, colour and terminology."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import atomic_path
from .terminology import LESION_COLOR, LESION_SEGMENT_NAME, lesion_terminology
from .volumes import check_spacing, single_slice_grid

__all__ = ["write_seg_nrrd"]


def write_seg_nrrd(mask: np.ndarray, path: str | os.PathLike, spacing: Sequence[float] | None = None,
                   ijk_to_lps: Sequence[Sequence[float]] | None = None, *,
                   segment_name: str = LESION_SEGMENT_NAME, color: Sequence[float] = LESION_COLOR,
                   terminology: Mapping[str, Any] | None = None, segment_id: str = "lesion") -> Path:
    """Write a ``rows x cols`` binary mask as a one-segment ``.seg.nrrd`` that 3D Slicer loads natively.

    The grid is the one-slice grid of :func:`~PilletGANLib.outputs.volumes.write_volume`
    (:func:`~PilletGANLib.outputs.volumes.single_slice_grid`), so the segmentation lies exactly on the heat-map
    volumes.

    Args:
        mask: boolean (or 0/1) ``rows x cols`` mask in the source pixel grid.
        path: destination, normally ``<stem>.seg.nrrd``.
        spacing: ``[row, column]`` pixel spacing in mm; ``None`` = 1 mm.
        ijk_to_lps: the source's grid (the reader's ``ijk_to_lps``); ``None``: axis-aligned from ``spacing``.
        segment_name: the segment's name.
        color: RGB in [0, 1].
        terminology: segment terminology in ``slicerio``'s dict form (``contextName``, ``category``, ``type``,
            ``anatomicContextName``, ``anatomicRegion``; codes as ``[scheme, value, meaning]``); default: the
            lesion terminology of :mod:`PilletGANLib.outputs.terminology`.
        segment_id: the segment's identifier inside the file.

    Raises:
        OutputError: not a 2D mask, bad spacing, grid or colour, or the file cannot be written.
    """
    import slicerio

    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise OutputError(f"expected a 2D rows x cols mask, got an array of shape {mask.shape}", path)
    rgb = [float(c) for c in color]
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise OutputError(f"segment colour {list(color)} is not three numbers in [0, 1]", path)
    grid = single_slice_grid(check_spacing(spacing, path), ijk_to_lps, path)
    binary = mask.astype(bool)
    # slicerio writes voxels indexed (i, j, k) = (column, row, slice)
    voxels = np.ascontiguousarray(binary.T[:, :, np.newaxis].astype(np.uint8))
    columns, rows = voxels.shape[:2]
    segment = {
        "id": segment_id,
        "name": segment_name,
        "color": rgb,
        "labelValue": 1,
        "layer": 0,
        "extent": [0, columns - 1, 0, rows - 1, 0, 0],
        "terminology": dict(terminology) if terminology is not None else lesion_terminology(),
    }
    segmentation = {"voxels": voxels, "ijkToLPS": grid, "segments": [segment],
                    "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap"}
    with atomic_path(path) as temporary:
        slicerio.write_segmentation(str(temporary), segmentation)
    return path

