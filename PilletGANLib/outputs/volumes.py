"""2D maps as NIfTI or NRRD volumes on the source image's grid: its pixel spacing, and for a NIfTI, NRRD or
MetaImage source its origin and direction too."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .atomic import atomic_path

__all__ = ["check_spacing", "single_slice_grid", "write_volume"]

_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def check_spacing(spacing: Sequence[float] | None, path: str | os.PathLike) -> tuple[float, float]:
    """``(row, column)`` spacing in mm; ``None`` means 1 mm. Raises ``OutputError`` unless two positive numbers."""
    if spacing is None:
        return (1.0, 1.0)
    values = tuple(float(v) for v in spacing)
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise OutputError(f"pixel spacing {list(spacing)} is not two positive numbers (row, column) in mm", path)
    return values


def single_slice_grid(spacing: tuple[float, float], ijk_to_lps: Sequence[Sequence[float]] | None = None,
                      path: str | os.PathLike = "") -> np.ndarray:
    """The 4 x 4 IJK-to-LPS matrix of the one-slice 3D grid every volume output uses (i along columns, j along rows).

    ``ijk_to_lps`` is the source file's own grid (the reader's ``meta["ijk_to_lps"]`` for NIfTI, NRRD and
    MetaImage sources), so the outputs lie on the source in a viewer; without it the slice is axis-aligned with
    ``spacing``, 1 mm thick, the first pixel's centre at the origin (DICOM radiographs carry no position). The
    NIfTI/NRRD heat maps and the ``.seg.nrrd`` mask share this grid.

    Raises:
        OutputError: ``ijk_to_lps`` is not a finite 4 x 4 affine matrix with independent axes.
    """
    if ijk_to_lps is None:
        matrix = np.eye(4)
        matrix[0, 0], matrix[1, 1] = spacing[1], spacing[0]
        return matrix
    matrix = np.asarray(ijk_to_lps, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all() or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise OutputError(f"the source grid {matrix.tolist()} is not a 4 x 4 affine matrix", path)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    # independence of the axes' directions, whatever the spacing (a grid of 1e-9 mm pixels is still a grid)
    if not (spacing > 0).all() or abs(np.linalg.det(matrix[:3, :3] / spacing)) < 1e-6:
        raise OutputError(f"the source grid {matrix.tolist()} does not have three independent axes", path)
    return matrix


def write_volume(array2d: np.ndarray, path: str | os.PathLike, spacing: Sequence[float] | None = None,
                 ijk_to_lps: Sequence[Sequence[float]] | None = None) -> Path:
    """Write a ``rows x cols`` array as a one-slice NIfTI (``.nii.gz``/``.nii``) or NRRD (``.nrrd``) volume.

    ``sitk.GetArrayFromImage(sitk.ReadImage(path))`` gives the array back as ``1 x rows x cols`` with spacing
    ``(column, row, 1)`` mm; nibabel gives it as ``cols x rows x 1`` (x first). Boolean arrays are stored as
    uint8, other dtypes unchanged.

    Args:
        array2d: the map, in the source image's pixel grid.
        path: destination; the suffix picks the format.
        spacing: ``[row, column]`` pixel spacing in mm (the reader's ``pixel_spacing``); ``None`` = 1 mm.
        ijk_to_lps: the source's grid (the reader's ``ijk_to_lps``), see :func:`single_slice_grid`.

    Raises:
        OutputError: unsupported suffix, not a 2D array, bad spacing or grid, or the file cannot be written.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.name.lower().endswith(_SUFFIXES):
        raise OutputError(f"unsupported volume format; use one of {', '.join(_SUFFIXES)}", path)
    array = np.asarray(array2d)
    if array.ndim != 2:
        raise OutputError(f"expected a 2D rows x cols map, got an array of shape {array.shape}", path)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    grid = single_slice_grid(check_spacing(spacing, path), ijk_to_lps, path)
    xyz_spacing = np.linalg.norm(grid[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array)[np.newaxis])
    try:
        image.SetSpacing(xyz_spacing.tolist())
        image.SetDirection((grid[:3, :3] / xyz_spacing).ravel().tolist())
        image.SetOrigin(grid[:3, 3].tolist())
    except RuntimeError as err:  # ITK refuses spacings or directions that overflow (1e308 mm) or vanish (1e-300 mm)
        raise OutputError(f"SimpleITK cannot place the map on the grid of spacing {list(xyz_spacing[:2])} mm "
                          f"({str(err).strip().splitlines()[-1]})", path) from err
    with atomic_path(path) as temporary:
        try:
            sitk.WriteImage(image, str(temporary), True)
        except RuntimeError as err:
            raise OutputError(f"SimpleITK cannot write it ({str(err).strip().splitlines()[-1]})", path) from err
    return path
