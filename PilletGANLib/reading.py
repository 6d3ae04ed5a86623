"""``load_cxr``: one entry point that reads a chest radiograph from any supported file.

Formats are recognised by content, not by extension: DICOM (with or without preamble), PNG,
JPEG, TIFF, NIfTI, NRRD and MetaImage. Every returned image is float32 ``H x W`` with air dark.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .dicom.reader import check_contrast, check_dimensions, check_pixel_values, read_dicom_image
from .errors import (
    ColourImageError,
    CorruptFileError,
    EmptyFileError,
    FileNotFoundInputError,
    ImplausibleDimensionsError,
    MultiFrameError,
    NotARegularFileError,
    TruncatedFileError,
    UnreadableFileError,
    UnrecognizedFormatError,
    UnsupportedImageError,
)
from .text import error_excerpt, header_excerpt

__all__ = ["detect_format", "load_cxr"]

_PIL_FORMATS = {"png", "jpeg", "tiff"}
_ITK_FORMATS = {"nifti", "nrrd", "metaimage"}


def detect_format(path: str | Path) -> str:
    """Return ``dicom``, ``png``, ``jpeg``, ``tiff``, ``nifti``, ``nrrd``, ``metaimage`` or ``unknown``."""
    path = Path(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as err:
        raise UnreadableFileError(f"cannot be opened for reading ({err.strerror or err})", path) from err
    name = path.name.lower()
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if name.endswith((".mha", ".mhd")) or head.lstrip().startswith((b"ObjectType", b"NDims")):
        return "metaimage"
    if len(head) >= 348 and head[344:347] in (b"n+1", b"ni1", b"n+2"):
        return "nifti"
    if head.startswith(b"\x1f\x8b") and name.endswith(".nii.gz"):
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(348)
        except EOFError as err:
            raise TruncatedFileError(f"the gzip stream ends early ({error_excerpt(err)}); re-export it", path) from err
        except (OSError, zlib.error) as err:
            raise CorruptFileError(f"the gzip stream is damaged ({error_excerpt(err)})", path) from err
        if inner[344:347] in (b"n+1", b"ni1", b"n+2"):
            return "nifti"
    return "dicom_candidate"


def _check_regular_file(path: Path) -> int:
    """The size of ``path``; raises unless it is an existing regular file (a FIFO is never opened: it would block)."""
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        if path.is_symlink():
            raise UnreadableFileError("broken symbolic link (its target does not exist)", path) from err
        raise FileNotFoundInputError("no such file", path) from err
    except OSError as err:
        raise UnreadableFileError(f"the file cannot be accessed ({err.strerror or err})", path) from err
    if stat.S_ISDIR(info.st_mode):
        raise NotARegularFileError("a folder, not a file", path)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFileError("not a regular file (FIFO, socket or device); not opened", path)
    return info.st_size


def _to_grey(pixels: np.ndarray, path: Path) -> np.ndarray:
    if np.iscomplexobj(pixels):
        raise UnsupportedImageError(f"complex pixel values ({pixels.dtype}: phase or frequency data); a radiograph is "
                                    "real-valued", path)
    with np.errstate(over="ignore"):  # float64 values beyond float32 become inf, which check_pixel_values names
        if pixels.ndim == 2:
            return pixels.astype(np.float32)
        if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
            rgb = pixels[..., :3].astype(np.float32)
            return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if pixels.ndim == 3 and pixels.shape[2] in (1, 2):
            return pixels[..., 0].astype(np.float32)
    raise ColourImageError(f"pixel array of shape {pixels.shape} is not a single greyscale image", path)


def _read_pil(path: Path, fmt: str) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            check_dimensions(img.height, img.width, path, "the image")
            if getattr(img, "n_frames", 1) > 1:
                raise MultiFrameError(f"a multi-page {fmt.upper()} ({img.n_frames} pages); one image is expected", path)
            mode = img.mode
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode in ("LA", "PA"):
                img = img.convert("L")
            elif mode in ("CMYK", "YCbCr"):
                img = img.convert("RGB")
            pixels = np.asarray(img)
    # Pillow's plugins raise these too for damaged headers (a TIFF without its dimensions tags: TypeError)
    except (UnidentifiedImageError, SyntaxError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
            struct.error) as err:
        raise CorruptFileError(f"the {fmt.upper()} data cannot be decoded ({error_excerpt(err)})", path) from err
    except OSError as err:
        if "truncated" in str(err).lower() or isinstance(err, EOFError):
            raise TruncatedFileError(f"the {fmt.upper()} file is truncated ({err}); re-export it", path) from err
        raise CorruptFileError(f"the {fmt.upper()} data cannot be decoded ({err})", path) from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImplausibleDimensionsError(f"refused as a decompression bomb ({err})", path) from err
    image = _to_grey(pixels, path)
    return image, {"format": fmt, "mode": mode}


#: The header fields that name a detached pixel-data file, and their values that mean "the data follow the header".
_DATA_FILE_FIELDS = {"nrrd": (re.compile(r"^data ?file:\s*(.*)$"), ()),
                     "metaimage": (re.compile(r"^ElementDataFile\s*=\s*(.*)$"), ("LOCAL",))}
#: Several data files: NRRD / MetaImage ``LIST`` or a printf pattern followed by min, max and step (and sub-dimension).
_SEVERAL_DATA_FILES = re.compile(r"^(LIST\b.*|\S*%\S*(\s+-?\d+){3,4})$")
_HEADER_BYTES = 65_536


def _check_data_file(path: Path, fmt: str) -> None:
    """Refuse a NRRD / MetaImage header whose pixel data lie in another file outside the header's own folder (an
    absolute path or ``..``: a shared file must not make the reader load whatever the header names) or in several
    files (a series, not one radiograph). A detached data file next to the header (``.nhdr`` + ``.raw``) is read."""
    if fmt not in _DATA_FILE_FIELDS:
        return
    pattern, attached = _DATA_FILE_FIELDS[fmt]
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_BYTES).decode("latin-1")
    for line in head.splitlines():
        if fmt == "nrrd" and not line.strip():
            return  # the blank line that ends a NRRD header
        match = pattern.match(line.strip())
        if match is None:
            continue
        name = match.group(1).strip()
        if name in attached:
            return
        if _SEVERAL_DATA_FILES.match(name):
            raise MultiFrameError(f"the header spreads its pixel data over several files ({header_excerpt(name)}); "
                                  "one 2D radiograph is expected", path)
        folder = path.resolve().parent
        if Path(name).is_absolute() or not (folder / name).resolve().is_relative_to(folder):
            raise UnsupportedImageError(f"the header reads its pixel data from {header_excerpt(name)}, outside the "
                                        "header's folder; refused (put the data file next to the header)", path)
        return


def _read_itk(path: Path, fmt: str) -> tuple[np.ndarray, dict[str, Any]]:
    import SimpleITK as sitk

    _check_data_file(path, fmt)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        if len(size) > 2 and any(s > 1 for s in size[2:]):
            hint = ("; its pixels lie along another pair of axes: save the image with its columns and rows as the "
                    "first two") if sum(s > 1 for s in size) == 2 else ""
            raise MultiFrameError(f"a volume of size {size}; one 2D radiograph is expected{hint}", path)
        check_dimensions(int(size[1]), int(size[0]), path, "the image")
        img = reader.Execute()
    except RuntimeError as err:
        raise CorruptFileError(f"the {fmt} file cannot be read ({str(err).strip().splitlines()[-1]})", path) from err
    pixels = sitk.GetArrayFromImage(img)
    keep = 2 if img.GetNumberOfComponentsPerPixel() == 1 else 3
    pixels = pixels.reshape(pixels.shape[-keep:])
    spacing = img.GetSpacing()
    meta = {"format": fmt, "pixel_spacing": [float(spacing[1]), float(spacing[0])],
            "pixel_spacing_source": f"{fmt} header", "ijk_to_lps": _ijk_to_lps(img)}
    return _to_grey(pixels, path), meta


def _ijk_to_lps(img: Any) -> list[list[float]]:
    """The file's pixel grid as a 4 x 4 IJK-to-LPS matrix (a 2D image as the slice k = 0 of a 1 mm thick grid), so
    that the outputs can be written on it (:func:`~PilletGANLib.outputs.volumes.single_slice_grid`)."""
    dimension = img.GetDimension()
    matrix = np.eye(4)
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    matrix[:dimension, :dimension] = direction * np.asarray(img.GetSpacing())
    matrix[:dimension, 3] = img.GetOrigin()
    return matrix.tolist()


def load_cxr(path: str | Path, network_size: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one chest radiograph.

    Args:
        path: a DICOM file (any transfer syntax pydicom decodes with the pylibjpeg plugins), a PNG,
            JPEG or TIFF image (colour converted to grey), or a 2D NIfTI, NRRD or MetaImage file.
        network_size: the side of the network grid the image is read for, or ``None`` for the exact pixels.
            With it, a DICOM image of at least 4 times that size is read at reduced resolution
            (:mod:`PilletGANLib.dicom.reduced_resolution`): JPEG 2000 decoded at a coarser level of its pyramid (up to
            13 times faster), other pixel data averaged over blocks once decoded; the image is then on the reduced
            grid, ``meta["original_shape"]`` is still the source grid, and
            :func:`~PilletGANLib.transforms.pipeline.prepare_image` resamples it to the network with the source
            geometry.

    Returns:
        ``(image, meta)``. ``image`` is float32 ``H x W`` in the source pixel grid (but see ``network_size``) with air dark and
        bone bright. ``meta`` always has ``source_path``, ``format``, ``original_shape``,
        ``pixel_spacing`` (row, column mm or None) and ``pixel_spacing_source``; NIfTI, NRRD and MetaImage add
        ``ijk_to_lps`` (the file's pixel grid, a 4 x 4 matrix as nested lists); DICOM adds modality,
        SOP Instance / Series / Study UIDs, photometric interpretation, transfer syntax, view position,
        body part, ``reduced_resolution_level`` (halvings of the resolution the image is at: 0 read in full) and
        ``reorientation`` (the turn, 0 to 7, that brings the image to ``L\\F`` for the network,
        :func:`~PilletGANLib.dicom.orientation.settle_orientation`; the image itself stays as stored).

    Raises:
        PilletGANError: a subclass naming the file and what is wrong with it.
    """
    path = Path(path)
    size = _check_regular_file(path)
    if not os.access(path, os.R_OK):
        raise UnreadableFileError("permission denied: the file cannot be read", path)
    if size == 0:
        raise EmptyFileError("the file is empty (0 bytes)", path)
    fmt = detect_format(path)
    if fmt in ("dicom", "dicom_candidate"):
        return read_dicom_image(path, network_size)
    if fmt in _PIL_FORMATS:
        image, meta = _read_pil(path, fmt)
    elif fmt in _ITK_FORMATS:
        image, meta = _read_itk(path, fmt)
    else:  # pragma: no cover - detect_format returns only the names above
        raise UnrecognizedFormatError("unsupported format", path)
    check_pixel_values(image, path, "once read as 32-bit floats")
    check_contrast(image, path)
    base = {"source_path": str(path.resolve()), "original_shape": [int(image.shape[0]), int(image.shape[1])],
            "pixel_spacing": None, "pixel_spacing_source": None, "modality": None,
            "sop_instance_uid": None, "series_instance_uid": None, "study_instance_uid": None,
            "photometric_interpretation": None, "transfer_syntax": None, "view_position": None,
            "body_part": None}
    base.update(meta)
    return image, base
