"""2D maps as NIfTI or NRRD volumes with the source image's pixel spacing."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .atomic import atomic_path

__all__ = ["check_spacing", "single_slice_geometry", "write_volume"]

_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def check_spacing(spacing: Sequence[float] | None, path: str | os.PathLike) -> tuple[float, float]:
    """``(row, column)`` spacing in mm; ``None`` means 1 mm. Raises ``OutputError`` unless two positive numbers."""
    if spacing is None:
        return (1.0, 1.0)
    values = tuple(float(v) for v in spacing)
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise OutputError(f"pixel spacing {list(spacing)} is not two positive numbers (row, column) in mm", path)
    return values


def single_slice_geometry(spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Spacing ``(x, y, z)`` and origin of the one-slice 3D grid every volume output uses.

    x runs along columns and y along rows; the slice is 1 mm thick and the first pixel's centre is at the
    origin, so the NIfTI/NRRD heat maps and the ``.seg.nrrd`` mask share one geometry.
    """
    return np.array([spacing[1], spacing[0], 1.0]), np.zeros(3)


def write_volume(array2d: np.ndarray, path: str | os.PathLike, spacing: Sequence[float] | None = None) -> Path:
    """Write a ``rows x cols`` array as a one-slice NIfTI (``.nii.gz``/``.nii``) or NRRD (``.nrrd``) volume.

    ``sitk.GetArrayFromImage(sitk.ReadImage(path))`` gives the array back as ``1 x rows x cols`` with spacing
    ``(column, row, 1)`` mm; nibabel gives it as ``cols x rows x 1`` (x first). Boolean arrays are stored as
    uint8, other dtypes unchanged.

    Args:
        array2d: the map, in the source image's pixel grid.
        path: destination; the suffix picks the format.
        spacing: ``[row, column]`` pixel spacing in mm (the reader's ``pixel_spacing``); ``None`` = 1 mm.

    Raises:
        OutputError: unsupported suffix, not a 2D array, bad spacing, or the file cannot be written.
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
    xyz_spacing, origin = single_slice_geometry(check_spacing(spacing, path))
    image = sitk.GetImageFromArray(np.ascontiguousarray(array)[np.newaxis])
    image.SetSpacing(xyz_spacing.tolist())
    image.SetOrigin(origin.tolist())
    with atomic_path(path) as temporary:
        try:
            sitk.WriteImage(image, str(temporary), True)
        except RuntimeError as err:
            raise OutputError(f"SimpleITK cannot write it ({str(err).strip().splitlines()[-1]})", path) from err
    return path
