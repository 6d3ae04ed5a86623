"""Read one projection radiograph from a DICOM file into display-ready float pixels.

The returned image always has air dark and bone bright: Modality LUT, then VOI LUT or window,
then MONOCHROME1 inversion, with pixel padding replaced by the darkest real value. Every check
that can be made from the header is made before pixel data is decoded, so a file that promises
absurd dimensions is refused before anything is allocated.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from ..errors import (
    ColourImageError,
    CorruptFileError,
    ImplausibleDimensionsError,
    MissingPixelDataError,
    MultiFrameError,
    NotAnImageError,
    TruncatedFileError,
    UnrecognizedFormatError,
    UnsupportedTransferSyntaxError,
)

__all__ = ["MAX_SIDE", "dicom_meta", "read_dicom_header", "read_dicom_image"]

#: Largest accepted side of a radiograph, in pixels (detectors are at most about 4,300 px).
MAX_SIDE = 16384
#: Largest accepted number of pixels in one image.
MAX_PIXELS = 100_000_000

#: SOP classes of DICOM objects that carry no image to analyse, by keyword fragment.
_NON_IMAGE_SOP_WORDS = ("SR Storage", "Report", "Presentation State", "Key Object", "Encapsulated",
                        "Raw Data", "Waveform", "Segmentation", "Registration", "Media Storage Directory")
_GREY = ("MONOCHROME1", "MONOCHROME2")
_NOT_DICOM = "not a DICOM file nor a supported image format (PNG, JPEG, TIFF, NIfTI, NRRD, MHA)"
_NOT_DICOM = "not a DICOM file nor a supported image format (PNG, JPEG, TIFF, NIfTI, NRRD, MHA)"
#: Values longer than this are left on disk when only the header is read.
_DEFER_BYTES = 1024


def read_dicom_header(path: str | Path) -> Dataset:
    """Read a DICOM file's header; large values (Pixel Data) are indexed but not loaded.

    Files without the 128-byte preamble are accepted when they parse as DICOM and hold at least
    a SOP Class UID; anything else raises :class:`UnrecognizedFormatError`.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        pass
    except (EOFError, ValueError, OSError, TypeError, KeyError, AttributeError, NotImplementedError) as err:
        raise _read_failure(path, err) from err
    else:
        if any("end of file" in str(w.message).lower() for w in caught):
            raise TruncatedFileError("the file ends before the DICOM data it announces "
                                     "(truncated copy or interrupted transfer); re-export it", path)
        return ds
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
    except Exception as err:
        raise UnrecognizedFormatError(_NOT_DICOM, path) from err
    if "SOPClassUID" not in ds and "Modality" not in ds:
        raise UnrecognizedFormatError(_NOT_DICOM, path)
    return ds


def _read_failure(path: Path, err: Exception) -> Exception:
    text = str(err).lower()
    if isinstance(err, EOFError) or "end of file" in text or "truncat" in text or "bytes remaining" in text \
            or "fewer bytes" in text or "shorter" in text:
        return TruncatedFileError("the file ends before the DICOM data it announces "
                                  "(truncated copy or interrupted transfer); re-export it", path)
    return CorruptFileError(f"the DICOM data cannot be parsed ({type(err).__name__}: {err}); re-export the file", path)


def _parsed_end(ds: Dataset) -> int | None:
    """File offset where the last parsed element ends (None when it cannot be known)."""
    if not len(ds):
        return None
    element = ds.get_item(max(ds.keys()))
    offset, length = getattr(element, "value_tell", None), getattr(element, "length", None)
    if offset is None or length is None or length == 0xFFFFFFFF:
        return None
    return int(offset) + int(length)


def check_radiograph_header(ds: Dataset, path: Path) -> None:
    """Refuse, from the header alone, anything that is not one greyscale projection image."""
    sop_name = UID(ds.SOPClassUID).name if "SOPClassUID" in ds else ""
    if any(word.lower() in sop_name.lower() for word in _NON_IMAGE_SOP_WORDS):
        raise NotAnImageError(f"a DICOM '{sop_name}' object holds no radiograph to analyse", path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        end = _parsed_end(ds)
        if end is not None and end < path.stat().st_size:
            raise TruncatedFileError("the file ends inside a DICOM element before its Pixel Data "
                                     "(truncated copy or interrupted transfer); re-export it", path)
        kind = f"'{sop_name}' " if sop_name else ""
        raise MissingPixelDataError(f"this DICOM {kind}object has no Pixel Data element, so there is no image to read", path)
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise NotAnImageError("floating-point pixel data is a parametric map, not a radiograph", path)
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            raise CorruptFileError(f"the image header lacks {keyword}; the pixel data cannot be interpreted", path)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows < 2 or cols < 2 or rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_PIXELS:
        raise ImplausibleDimensionsError(
            f"the header announces {rows} x {cols} pixels, outside the accepted 2..{MAX_SIDE} per side; "
            "refusing to allocate memory for it", path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise MultiFrameError(f"a multi-frame object ({frames} frames); one projection radiograph per file is expected", path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in _GREY:
        raise ColourImageError(
            f"a colour image ({photometric}, {samples} samples per pixel); a greyscale radiograph "
            "(MONOCHROME1 or MONOCHROME2) is expected", path)


def _pixel_bytes_on_disk(ds: Dataset, path: Path) -> int:
    """Bytes of Pixel Data actually present in the file, read from the header's element index."""
    element = ds.get_item("PixelData")
    length = getattr(element, "length", None)
    offset = getattr(element, "value_tell", None)
    if length is None or offset is None or length == 0xFFFFFFFF:
        return len(ds.PixelData)
    return max(0, min(int(length), path.stat().st_size - int(offset)))


def check_decodable(ds: Dataset, path: Path) -> None:
    """Refuse pixel data that is cut short or that no installed decoder can read."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return
    syntax = UID(syntax)
    if not syntax.is_compressed:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
        actual = _pixel_bytes_on_disk(ds, path)
        if actual < expected:
            raise TruncatedFileError(
                f"Pixel Data holds {actual} bytes but {ds.Rows} x {ds.Columns} x {ds.BitsAllocated} bits "
                f"need {expected}; the file is truncated, re-export it", path)
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as err:
        raise UnsupportedTransferSyntaxError(
            f"transfer syntax {syntax.name} ({syntax}) has no pixel decoder in pydicom; "
            "convert the file to an uncompressed or JPEG/JPEG 2000 syntax", path) from err
    if not decoder.is_available:
        missing = ", ".join(sorted(decoder.missing_dependencies)) or "a decoder plugin"
        raise UnsupportedTransferSyntaxError(
            f"transfer syntax {syntax.name} ({syntax}) needs {missing}; install it "
            "(pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg)", path)


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """Return (row, column) spacing in mm and the attribute it came from; zero spacing is unknown."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return (row, col), keyword
    return None, None


def dicom_meta(ds: Dataset, path: str | Path) -> dict[str, Any]:
    """Describe a DICOM radiograph header as the plain-typed ``meta`` dictionary of :func:`load_cxr`."""
    spacing, spacing_source = _spacing(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return {
        "source_path": str(Path(path).resolve()),
        "format": "dicom",
        "modality": str(ds.get("Modality", "")) or None,
        "sop_class_uid": str(ds.get("SOPClassUID", "")) or None,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")) or None,
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")) or None,
        "pixel_spacing": list(spacing) if spacing else None,
        "pixel_spacing_source": spacing_source,
        "original_shape": [int(ds.Rows), int(ds.Columns)] if "Rows" in ds and "Columns" in ds else None,
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")) or None,
        "transfer_syntax": str(syntax) if syntax else None,
        "transfer_syntax_name": UID(syntax).name if syntax else None,
        "view_position": str(ds.get("ViewPosition", "")) or None,
        "body_part": str(ds.get("BodyPartExamined", "")) or None,
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0) or None,
    }


def _stored_values(ds: Dataset, path: Path) -> np.ndarray:
    """Decode pixel data with BitsStored honoured (unused high bits cleared, signed values extended)."""
    try:
        pixels = ds.pixel_array
    except (EOFError, ValueError, OSError, RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise _read_failure(path, err) from err
    except NotImplementedError as err:
        raise UnsupportedTransferSyntaxError(f"pixel data cannot be decoded: {err}", path) from err
    if pixels.ndim != 2:
        raise MultiFrameError(f"decoded pixel data has shape {pixels.shape}; one 2D image is expected", path)
    allocated = int(ds.BitsAllocated)
    stored = int(ds.get("BitsStored", allocated) or allocated)
    if np.issubdtype(pixels.dtype, np.integer) and 0 < stored < allocated:
        pixels = pixels.astype(np.int64)
        mask = (1 << stored) - 1
        pixels = pixels & mask
        if int(ds.get("PixelRepresentation", 0)) == 1:
            sign = 1 << (stored - 1)
            pixels = (pixels ^ sign) - sign
    return pixels


def _padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray | None:
    if "PixelPaddingValue" not in ds:
        return None
    low = int(ds.PixelPaddingValue)
    high = int(ds.get("PixelPaddingRangeLimit", low))
    low, high = min(low, high), max(low, high)
    mask = (stored >= low) & (stored <= high)
    return mask if mask.any() and not mask.all() else None


def read_dicom_image(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a single-frame greyscale DICOM radiograph.

    Returns ``(image, meta)``: ``image`` is float32 ``rows x columns`` after Modality LUT, VOI LUT
    (or the first window) and MONOCHROME1 inversion, so air is dark and bone bright; ``meta`` is
    described in :func:`PilletGANLib.load_cxr`.
    """
    path = Path(path)
    header = read_dicom_header(path)
    check_radiograph_header(header, path)
    check_decodable(header, path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise _read_failure(path, err) from err
    if "PixelData" not in ds:
        raise TruncatedFileError("the file ends before its Pixel Data; it is truncated, re-export it", path)
    stored = _stored_values(ds, path)
    padding = _padding_mask(ds, stored)
    try:
        image = apply_modality_lut(stored, ds)
        voi_applied = any(k in ds for k in ("VOILUTSequence", "WindowCenter"))
        if voi_applied:
            image = apply_voi_lut(image, ds, index=0)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise CorruptFileError(f"the Modality/VOI LUT in the header cannot be applied ({err})", path) from err
    image = np.asarray(image, dtype=np.float32)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric == "MONOCHROME1":
        image = np.float32(image.max() + image.min()) - image
    if padding is not None:
        image[padding] = image[~padding].min()
    if not np.isfinite(image).all():
        raise CorruptFileError("the pixel values are not finite after the header's LUTs", path)
    meta = dicom_meta(ds, path)
    meta.update({"voi_applied": bool(voi_applied), "inverted": photometric == "MONOCHROME1",
                 "padding_pixels": int(padding.sum()) if padding is not None else 0})
    return image, meta
