"""Read one projection radiograph from a DICOM file into display-ready float pixels.

The returned image has air dark and bone bright when the header tells the truth: Modality LUT, then VOI LUT or
window, then MONOCHROME1 inversion, with pixel padding replaced by the darkest real value. When the pixels look
like a negative all the same (a photometric interpretation the pixels contradict), ``meta["warnings"]`` says so
and the warning is logged: the image is never analysed as a negative silently. A Presentation LUT Shape that
contradicts the Photometric Interpretation is followed only when the pixels side with it, with a warning. Every check
that can be made from the header is made before pixel data is decoded, so a file that promises
absurd dimensions is refused before anything is allocated.
"""

from __future__ import annotations

import logging
import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import (
    ColourImageError,
    CorruptFileError,
    EmptyFileError,
    ImplausibleDimensionsError,
    MissingPixelDataError,
    MultiFrameError,
    NotAnImageError,
    TruncatedFileError,
    UnreadableFileError,
    UnrecognizedFormatError,
    UnsupportedTransferSyntaxError,
)
from ..text import error_excerpt, header_excerpt, path_text
from .codestream import CodestreamHeader, check_codestream, starts_with_item
from .grey_levels import apply_modality, apply_voi, grey_levels, has_contrast, inverting_steps, robust_range
from .header_values import descriptive_value, header_integer, parsed_value
from .orientation import pixel_aspect_warning, settle_orientation, turned
from .padding import padding_mask
from .pixel_representation import settle_pixel_representation, value_range
from .polarity import polarity_warning, settle_presentation_shape
from .reduced_resolution import area_reduce, reduced_resolution_pixels, reduction_level
from .stored_bits import settle_high_bits

__all__ = ["MAX_ASPECT", "MAX_SIDE", "MIN_SIDE", "check_contrast", "check_decodable", "check_dimensions",
           "check_element_lengths", "check_pixel_values", "check_radiograph_header", "dicom_meta",
           "ensure_transfer_syntax", "header_integer", "read_dicom_header", "read_dicom_image"]

logger = logging.getLogger(__name__)

#: Smallest and largest accepted side of a radiograph, in pixels (detectors are at most about 4,300 px; the network
#: reads 128 or 256 px, so an image of a few pixels is an icon or a placeholder, not a radiograph).
MIN_SIDE = 32
MAX_SIDE = 16384
#: Largest accepted number of pixels in one image.
MAX_PIXELS = 100_000_000
#: Largest accepted ratio of the longer side to the shorter.
MAX_ASPECT = 2.5
#: Bits Allocated of the pixel data pydicom decodes (numpy has no 24-bit integers).
_DECODABLE_BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})

#: SOP classes of DICOM objects that carry no image to analyse, by keyword fragment.
_NON_IMAGE_SOP_WORDS = ("SR Storage", "Report", "Presentation State", "Key Object", "Encapsulated",
                        "Raw Data", "Waveform", "Segmentation", "Registration", "Media Storage Directory")
_GREY = ("MONOCHROME1", "MONOCHROME2")
#: The Photometric Interpretation a header without one is read with (as discovery reads it).
_DEFAULT_PHOTOMETRIC = "MONOCHROME2"
#: Photometric Interpretations of colour images with one sample per pixel (a palette index, a colour-coded stream).
_ONE_SAMPLE_COLOUR = frozenset({"PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
                                "XYB", "RGB", "HSV", "ARGB", "CMYK", "YBR_PARTIAL_422"})
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Fewer distinct grey levels than this (in a regular subsample) is no DICOM radiograph: a bitmap (the fewest in
#: 5,038 SIIM radiographs at 256 px: 30; the next 81).
MIN_GREY_LEVELS = 8
#: Pixel spacings (mm) a radiograph can have; a value outside is read as unknown (no physical sizes).
_PLAUSIBLE_SPACING_MM = (1e-3, 1e2)
#: pydicom's warning for an RLE segment longer than Rows x Columns: (decoded, expected) bytes.
_RLE_PADDING = re.compile(r"RLE segment contains non-conformant padding - (\d+) vs\. (\d+) bytes")
_NOT_DICOM = "not a DICOM file nor a supported image format (PNG, JPEG, TIFF, NIfTI, NRRD, MHA)"
#: Values longer than this are left on disk when only the header is read.
_DEFER_BYTES = 1024
#: Longest element value taken for real when it runs past the end of the file (longer: a corrupt length).
_PLAUSIBLE_LENGTH = 1 << 30
#: The most a deflated data set may inflate to: more than the largest radiograph the reader accepts
#: (:data:`MAX_PIXELS` of 32 bits) with its header; pydicom inflates the whole data set in memory, so a deflate
#: bomb (a few MB inflating to GBs) is refused before it does.
_MAX_INFLATED_BYTES = 4 * MAX_PIXELS + (64 << 20)


def read_dicom_header(path: str | Path, check_lengths: bool = True) -> Dataset:
    """Read a DICOM file's header; large values (Pixel Data) are indexed but not loaded.

    Files without the 128-byte preamble, and datasets without File Meta Information, are read as pydicom
    reads them when they hold at least a SOP Class UID or a Modality; a missing Transfer Syntax UID is then
    set from the encoding pydicom found (see :func:`ensure_transfer_syntax`). With ``check_lengths``, an element
    whose declared length runs past the end of the file is refused here, naming the element (else call
    :func:`check_element_lengths` later, as discovery does after its selection rules). Raises
    :class:`UnrecognizedFormatError` for anything that is not DICOM, :class:`EmptyFileError`,
    :class:`TruncatedFileError` or :class:`CorruptFileError` for broken DICOM.
    """
    path = Path(path)
    size = _file_size(path)
    if size == 0:
        raise EmptyFileError("the file is empty (0 bytes)", path)
    marker = _has_dicm_marker(path)
    if marker:
        _check_inflated_size(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=not marker)
    except InvalidDicomError as err:
        raise UnrecognizedFormatError(_NOT_DICOM, path) from err
    except RecursionError as err:
        raise _too_deep(path) from err
    except Exception as err:
        if not marker:
            raise UnrecognizedFormatError(_NOT_DICOM, path) from err
        raise _read_failure(path, err) from err
    meta = getattr(ds, "file_meta", None) or {}
    if not any(k in ds for k in ("SOPClassUID", "Modality", "PixelData", "DirectoryRecordSequence")) \
            and "MediaStorageSOPClassUID" not in meta:
        if marker:
            raise CorruptFileError("the file starts like DICOM (the 'DICM' marker) but what follows is not a DICOM "
                                   "dataset: no SOP Class UID, Modality or Pixel Data could be read", path)
        raise UnrecognizedFormatError(_NOT_DICOM, path)
    if check_lengths:
        check_element_lengths(ds, path)
    if any("end of file" in str(w.message).lower() for w in caught):
        raise TruncatedFileError("the file ends before the DICOM data it announces "
                                 "(truncated copy or interrupted transfer); re-export it", path)
    _check_single_pixel_data(ds, path)  # now, while every element still knows where it lies in the file
    ensure_transfer_syntax(ds, path)
    return ds


def _check_inflated_size(path: Path) -> None:
    """Refuse a Deflated Explicit VR Little Endian file whose data set inflates beyond :data:`_MAX_INFLATED_BYTES`,
    inflating it in a stream (nothing kept). Anything else, or a stream zlib cannot read, is left to pydicom."""
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return
        start = 132 + 12 + int(meta.FileMetaInformationGroupLength)  # preamble, DICM, (0002,0000), the group
    except Exception:  # noqa: BLE001 - no readable File Meta: pydicom's own reading reports the file
        return
    inflater, inflated = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            while (data := handle.read(1 << 20)) and not inflater.eof:
                while data:
                    inflated += len(inflater.decompress(data, 1 << 24))
                    if inflated > _MAX_INFLATED_BYTES:
                        raise CorruptFileError(f"the deflated data set inflates to more than {_MAX_INFLATED_BYTES:,} "
                                               "bytes, more than any radiograph the reader accepts (a deflate bomb?)",
                                               path)
                    data = inflater.unconsumed_tail
    except (OSError, zlib.error):
        return


def _is_deflated(ds: Dataset) -> bool:
    """Whether ``ds`` was read from Deflated Explicit VR Little Endian: its element offsets are not file offsets."""
    return getattr(ds, "file_meta", {}).get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as err:
        raise UnreadableFileError(f"the file cannot be accessed ({err.strerror or err})", path) from err


def _has_dicm_marker(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError as err:
        raise UnreadableFileError(f"the file cannot be read ({err.strerror or err})", path) from err


def _too_deep(path: Path) -> CorruptFileError:
    return CorruptFileError("DICOM sequences are nested deeper than the reader follows (Python's recursion limit); "
                            "the file is corrupt or made to exhaust readers", path)


def check_element_lengths(ds: Dataset, path: Path) -> None:
    """Refuse an element whose declared length runs past the end of the file (the last one parsed).

    A length that could be the element's real one (at most :data:`_PLAUSIBLE_LENGTH`, or exactly what Rows,
    Columns, Bits Allocated and frames need for native Pixel Data) means the file is cut short; any other
    length means the file is corrupt. Bytes after the Pixel Data that parse as such an element (junk appended to
    a whole file) are ignored with a logged warning: the image does not need them.
    """
    if _is_deflated(ds):
        return  # the offsets are in the inflated data set, not in the file; pydicom read all of it
    size = _file_size(path)
    pixel_data_at = getattr(ds.get_item("PixelData", keep_deferred=True), "value_tell", None)
    for tag in ds.keys():  # noqa: SIM118 - keys only: iterating the Dataset would read deferred values
        element = ds.get_item(tag, keep_deferred=True)
        offset, length = getattr(element, "value_tell", None), getattr(element, "length", None)
        if offset is None or length is None or length == 0xFFFFFFFF or offset + length <= size:
            continue
        if pixel_data_at is not None and offset > pixel_data_at:  # bytes after the image: not needed to read it
            logger.warning("%s: the bytes after the Pixel Data do not parse as DICOM elements (read as %s, "
                           "announcing %d bytes where %d follow); ignored", path_text(path), Tag(tag), length,
                           size - offset)
            continue
        name = f"{Tag(tag)}" + (f" {keyword_for_tag(tag)}" if keyword_for_tag(tag) else "")
        present = max(0, size - int(offset))
        expected = _native_pixel_bytes(ds) if Tag(tag) == 0x7FE00010 else None
        if (expected is not None and length not in (expected, expected + 1)) or length > _PLAUSIBLE_LENGTH:
            need = f" (Rows, Columns, Bits Allocated and frames need {expected})" if expected is not None else ""
            raise CorruptFileError(f"element {name} announces {length} bytes{need}, but only {present} follow in "
                                   "the file; the length is corrupt", path)
        raise TruncatedFileError(f"the file ends inside element {name}: it announces {length} bytes and {present} "
                                 "are present (truncated copy or interrupted transfer); re-export it", path)


def _check_single_pixel_data(ds: Dataset, path: Path) -> None:
    """Refuse a file whose data set holds Pixel Data twice: pydicom keeps the last element, and which of the two is
    the image cannot be told. The first leaves a gap, starting with the Pixel Data tag, between the end of the
    element read before the last Pixel Data and the last one's header (``ds`` just read with deferred values: an
    element read since has forgotten where it lies)."""
    element = ds.get_item("PixelData", keep_deferred=True)
    at = getattr(element, "value_tell", None)
    if at is None or _is_deflated(ds):
        return
    ends = []
    for tag in ds.keys():  # noqa: SIM118 - keys only: iterating the Dataset would read deferred values
        before = ds.get_item(tag, keep_deferred=True)
        offset, length = getattr(before, "value_tell", None), getattr(before, "length", None)
        if tag != 0x7FE00010 and offset is not None and length not in (None, 0xFFFFFFFF) and offset < at:
            ends.append(int(offset) + int(length))
    start = max(ends, default=at)
    if start + 12 >= at:  # no room for an element between them: the last Pixel Data's own header (8 or 12 bytes)
        return
    big = UID(ds.file_meta.get("TransferSyntaxUID", "")) == ExplicitVRBigEndian
    with open(path, "rb") as handle:
        handle.seek(start)
        head = handle.read(4)
    if head == (b"\x7f\xe0\x00\x10" if big else b"\xe0\x7f\x10\x00"):
        raise CorruptFileError("the file holds Pixel Data twice (two (7FE0,0010) elements); which one is the image "
                               "cannot be told, re-export it", path)


def _native_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of native Pixel Data the header describes, or ``None`` when it cannot say."""
    try:
        return (int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) * int(ds.get("SamplesPerPixel", 1) or 1)
                * int(ds.get("NumberOfFrames", 1) or 1) + 7) // 8
    except (AttributeError, TypeError, ValueError, KeyError):
        return None


def ensure_transfer_syntax(ds: Dataset, path: Path) -> None:
    """Give a dataset read without File Meta Information the Transfer Syntax UID of the encoding pydicom found.

    Only native (uncompressed) pixel data can be read that way; encapsulated pixel data without a transfer
    syntax cannot be decoded (nothing says how it was compressed) and is refused.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    pixels = ds.get_item("PixelData", keep_deferred=True) if "PixelData" in ds else None
    if pixels is not None and getattr(pixels, "length", None) == 0xFFFFFFFF:
        raise UnsupportedTransferSyntaxError("the pixel data is encapsulated (compressed) but the file has no "
                                             "File Meta Information saying how; re-export it as a DICOM file", path)
    if implicit is None or little is None:
        return
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax


def _read_failure(path: Path, err: Exception) -> Exception:
    if isinstance(err, RecursionError):
        return _too_deep(path)
    text = str(err).lower()
    if isinstance(err, EOFError) or "end of file" in text or "truncat" in text or "bytes remaining" in text \
            or "fewer bytes" in text or "shorter" in text:
        return TruncatedFileError("the file ends before the DICOM data it announces "
                                  "(truncated copy or interrupted transfer); re-export it", path)
    return CorruptFileError(f"the DICOM data cannot be parsed ({error_excerpt(err)}); re-export the file", path)


def _parsed_end(ds: Dataset) -> int | None:
    """File offset where the last parsed element ends (None when it cannot be known)."""
    if not len(ds):
        return None
    element = ds.get_item(max(ds.keys()), keep_deferred=True)
    offset, length = getattr(element, "value_tell", None), getattr(element, "length", None)
    if offset is None or length is None or length == 0xFFFFFFFF:
        return None
    return int(offset) + int(length)


def _photometric_interpretation(ds: Dataset, path: Path) -> str:
    """The header's Photometric Interpretation in capitals; :data:`_DEFAULT_PHOTOMETRIC` when it is absent or empty
    (as :func:`_supply_absent_pixel_attributes` reads it)."""
    photometric = str(parsed_value(ds, "PhotometricInterpretation", path) or "").strip().upper()
    return photometric or _DEFAULT_PHOTOMETRIC


def _sop_class_name(ds: Dataset, path: Path) -> str:
    """The name of the header's SOP Class UID (the UID itself when unknown); ``""`` when absent."""
    value = parsed_value(ds, "SOPClassUID", path)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise CorruptFileError("the header's SOPClassUID holds several values where one UID is expected", path)
    return UID(value).name


#: Image Pixel attributes read after the header checks, each validated by them: absent means this value.
_OPTIONAL_PIXEL_INTEGERS = {"SamplesPerPixel": 1, "NumberOfFrames": 1, "BitsStored": 0, "PixelRepresentation": 0}


def check_dimensions(rows: int, cols: int, path: Path, source: str) -> None:
    """Refuse a size no radiograph has, before any pixel is allocated; ``source`` says who announced it."""
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise ImplausibleDimensionsError(f"{source} announces {rows} x {cols} pixels, fewer than the {MIN_SIDE} a side "
                                         "that any radiograph has (an icon or a placeholder?)", path)
    if max(rows, cols) > MAX_ASPECT * min(rows, cols):
        raise ImplausibleDimensionsError(
            f"{source} announces {rows} x {cols} pixels, one side {max(rows, cols) / min(rows, cols):.1f} times the "
            f"other, where a chest radiograph's are within {MAX_ASPECT:g} times (detectors and cassettes about "
            "1.25): a long-length or stitched image, or a strip, not a chest radiograph", path)
    if rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_PIXELS:
        raise ImplausibleDimensionsError(
            f"{source} announces {rows} x {cols} pixels, outside the accepted {MAX_SIDE} per side and "
            f"{MAX_PIXELS:,} in all; refusing to allocate memory for it", path)


def check_radiograph_header(ds: Dataset, path: Path) -> None:
    """Refuse, from the header alone, anything that is not one greyscale projection image (including an image
    whose Image Pixel attributes are not single whole numbers, which every later step reads)."""
    sop_name = _sop_class_name(ds, path)
    if any(word.lower() in sop_name.lower() for word in _NON_IMAGE_SOP_WORDS):
        raise NotAnImageError(f"a DICOM '{sop_name}' object holds no radiograph to analyse", path)
    if sop_name.startswith("Enhanced "):  # Enhanced XA, XRF, CT...: multi-frame IODs, whose SEG must reference frames
        raise MultiFrameError(f"a DICOM '{sop_name}' object (an enhanced multi-frame image); one projection "
                              "radiograph per file (CR, DX or Digital X-Ray) is expected", path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        check_element_lengths(ds, path)  # an element that claims the rest of the file hides the Pixel Data
        end = _parsed_end(ds)
        if end is not None and end < path.stat().st_size:
            raise TruncatedFileError("the file ends inside a DICOM element before its Pixel Data "
                                     "(truncated copy or interrupted transfer); re-export it", path)
        kind = f"'{sop_name}' " if sop_name else ""
        raise MissingPixelDataError(f"this DICOM {kind}object has no Pixel Data element, so there is no image to read", path)
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise NotAnImageError("floating-point pixel data is a parametric map, not a radiograph", path)
    rows, cols, bits_allocated = (header_integer(ds, keyword, path) for keyword in ("Rows", "Columns", "BitsAllocated"))
    optional = {keyword: header_integer(ds, keyword, path, default)
                for keyword, default in _OPTIONAL_PIXEL_INTEGERS.items()}
    check_dimensions(rows, cols, path, "the header")
    if bits_allocated % 8 and bits_allocated != 1:
        raise CorruptFileError(f"the header's BitsAllocated is {bits_allocated}, where the standard allows 1 or a "
                               "multiple of 8 (12 is the retired packed ACR-NEMA layout); the pixel data cannot be "
                               "interpreted", path)
    if bits_allocated not in _DECODABLE_BITS_ALLOCATED:
        raise UnsupportedTransferSyntaxError(f"the header's BitsAllocated is {bits_allocated}: pixel data in "
                                             f"{bits_allocated}-bit words cannot be decoded (1, 8, 16, 32 and 64 can)",
                                             path)
    if optional["BitsStored"] > bits_allocated:
        raise CorruptFileError(f"the header's BitsStored {optional['BitsStored']} exceeds its BitsAllocated "
                               f"{bits_allocated}; the pixel data cannot be interpreted", path)
    frames = optional["NumberOfFrames"]
    if frames < 1:
        raise CorruptFileError(f"the header's NumberOfFrames is {frames}, where an image has at least 1; the pixel "
                               "data cannot be interpreted", path)
    if frames > 1:
        raise MultiFrameError(f"a multi-frame object ({frames} frames); one projection radiograph per file is expected", path)
    if optional["PixelRepresentation"] not in (0, 1):
        raise CorruptFileError(f"the header's PixelRepresentation is {optional['PixelRepresentation']}, where only 0 "
                               "(unsigned) or 1 (signed) exist; the pixel data cannot be interpreted", path)
    photometric = _photometric_interpretation(ds, path)
    samples = optional["SamplesPerPixel"] or 1
    if photometric in _GREY and samples != 1:
        raise CorruptFileError(f"the header says {photometric} with {samples} samples per pixel, where a greyscale "
                               "image has 1; the pixel data cannot be interpreted", path)
    if photometric not in _GREY and samples == 1 and photometric not in _ONE_SAMPLE_COLOUR:
        raise CorruptFileError(f"the header's Photometric Interpretation {header_excerpt(photometric)} is no defined "
                               "term; a greyscale radiograph (MONOCHROME1 or MONOCHROME2) is expected", path)
    if photometric not in _GREY:
        raise ColourImageError(
            f"a colour image ({header_excerpt(photometric)}, {samples} samples per pixel); a greyscale radiograph "
            "(MONOCHROME1 or MONOCHROME2) is expected", path)


def _pixel_bytes_on_disk(ds: Dataset, path: Path) -> int:
    """Bytes of Pixel Data actually present in the file, read from the header's element index."""
    element = ds.get_item("PixelData", keep_deferred=True)
    length = getattr(element, "length", None)
    offset = getattr(element, "value_tell", None)
    if length is None or offset is None or length == 0xFFFFFFFF or _is_deflated(ds):  # deflated: read whole, in memory
        return len(ds.PixelData)
    return max(0, min(int(length), path.stat().st_size - int(offset)))


def check_decodable(ds: Dataset, path: Path) -> CodestreamHeader | None:
    """Refuse pixel data that is cut short, that no installed decoder can read, or whose codestream declares
    another image than the header (checked from the codestream's own header, before decoding); return what the
    codestream declares, where its syntax has a header :func:`~PilletGANLib.dicom.codestream.check_codestream` reads."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return None
    syntax = UID(syntax)
    if not syntax.is_transfer_syntax:
        kind = "private or unknown" if syntax.is_private else "not a transfer syntax"
        raise UnsupportedTransferSyntaxError(
            f"transfer syntax {syntax} is {kind}: no decoder knows how its pixel data is encoded; "
            "convert the file to a standard transfer syntax", path)
    if not syntax.is_compressed:
        expected = header_integer(ds, "Rows", path) * header_integer(ds, "Columns", path) \
            * header_integer(ds, "BitsAllocated", path) // 8
        actual = _pixel_bytes_on_disk(ds, path)
        if getattr(ds.get_item("PixelData", keep_deferred=True), "length", None) == 0xFFFFFFFF or (
                actual < expected and starts_with_item(ds, path)):
            raise CorruptFileError(
                f"Pixel Data holds encapsulated fragments (compressed data) but the transfer syntax {syntax.name} is "
                "uncompressed; the file's Transfer Syntax UID is wrong, re-export it", path)
        if actual >= 2 * expected:
            raise CorruptFileError(
                f"Pixel Data holds {actual} bytes, {actual / expected:.1f} times the {expected} that {ds.Rows} x "
                f"{ds.Columns} pixels of {ds.BitsAllocated} bits need: the header does not describe this data (another "
                "bit depth, colour samples or more frames than it says)", path)
        if actual < expected:
            raise TruncatedFileError(
                f"Pixel Data holds {actual} bytes but {ds.Rows} x {ds.Columns} x {ds.BitsAllocated} bits "
                f"need {expected}; the file is truncated, re-export it", path)
        return None
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
    return check_codestream(ds, path, syntax)


def _header_text(ds: Dataset, keyword: str) -> str | None:
    value = descriptive_value(ds, keyword)
    return None if value is None else str(value) or None


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """Return (row, column) spacing in mm and the attribute it came from; a spacing no detector has (zero, negative,
    not finite, outside :data:`_PLAUSIBLE_SPACING_MM`) is unknown."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = descriptive_value(ds, keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        low, high = _PLAUSIBLE_SPACING_MM
        if low <= row <= high and low <= col <= high:
            return (row, col), keyword
    return None, None


def dicom_meta(ds: Dataset, path: str | Path) -> dict[str, Any]:
    """Describe a DICOM radiograph header as the plain-typed ``meta`` dictionary of :func:`load_cxr`."""
    spacing, spacing_source = _spacing(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return {
        "source_path": str(Path(path).resolve()),
        "format": "dicom",
        "modality": _header_text(ds, "Modality"),
        "sop_class_uid": _header_text(ds, "SOPClassUID"),
        "sop_instance_uid": _header_text(ds, "SOPInstanceUID"),
        "series_instance_uid": _header_text(ds, "SeriesInstanceUID"),
        "study_instance_uid": _header_text(ds, "StudyInstanceUID"),
        "pixel_spacing": list(spacing) if spacing else None,
        "pixel_spacing_source": spacing_source,
        "original_shape": [int(ds.Rows), int(ds.Columns)] if "Rows" in ds and "Columns" in ds else None,
        "photometric_interpretation": _header_text(ds, "PhotometricInterpretation"),
        "transfer_syntax": str(syntax) if syntax else None,
        "transfer_syntax_name": UID(syntax).name if syntax else None,
        "view_position": _header_text(ds, "ViewPosition"),
        "body_part": _header_text(ds, "BodyPartExamined"),
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0) or None,
    }


def _stored_values(ds: Dataset, path: Path, codestream: CodestreamHeader | None,
                   network_size: int | None = None) -> tuple[np.ndarray, int, str | None]:
    """``(pixels, reduction level, warning)``: pixel data decoded with BitsStored honoured (unused high bits
    cleared, signed values extended); JPEG 2000 at reduced resolution where :func:`reduced_resolution_pixels` allows
    it (the level is the number of halvings, 0 for a full decode).

    A codestream that holds more bits than Bits Stored says is read at its own depth, with a warning where a value
    is wider than Bits Stored: clearing the bits the encoder wrote would keep only the low bits of each value, not
    the image. Native words are checked for where their bits sit (:mod:`.stored_bits`).
    """
    allocated = header_integer(ds, "BitsAllocated", path)
    stored = declared = header_integer(ds, "BitsStored", path, default=allocated) or allocated
    high_bit = _high_bit(ds, path, stored)
    warning, deeper = None, False
    if codestream is not None:
        allocated, stored, warning, deeper = _codestream_depth(ds, codestream, allocated, stored)
    signed = header_integer(ds, "PixelRepresentation", path, default=0) == 1
    shape = (header_integer(ds, "Rows", path), header_integer(ds, "Columns", path))
    reduced = reduced_resolution_pixels(ds, shape, stored, signed, network_size) if network_size else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pixels = ds.pixel_array if reduced is None else reduced[0]
    except NotImplementedError as err:
        raise UnsupportedTransferSyntaxError(f"pixel data cannot be decoded: {error_excerpt(err)}", path) from err
    except MemoryError as err:
        raise ImplausibleDimensionsError("decoding the pixel data needs more memory than is available", path) from err
    except RecursionError as err:
        raise _too_deep(path) from err
    except Exception as err:  # decoders raise many types for damaged data; the file itself was read whole above,
        # so a decoder's "truncated" is about the codestream inside it, not a cut-short file
        syntax = UID(ds.file_meta.TransferSyntaxUID).name
        raise CorruptFileError(f"the {syntax} pixel data cannot be decoded ({error_excerpt(err)}); the file is "
                               "damaged, re-export it", path) from err
    _check_rle_segment_lengths(caught, path)
    if deeper and _fit(pixels, declared, signed):
        # a codestream written at the container's depth (DCMTK's lossless JPEG): no value is wider than the header
        # says, so the header stands (the VOI LUT's output range follows Bits Stored)
        warning, stored = None, declared
        ds.BitsStored, ds.HighBit = declared, high_bit
    if warning is None and not signed and not UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        pixels, stored, warning = settle_high_bits(ds, pixels, shape, stored, allocated, high_bit)
        if stored == allocated:
            ds.BitsStored, ds.HighBit = stored, stored - 1  # in memory only, so that the later steps read all bits
    if pixels.ndim != 2:
        raise MultiFrameError(f"decoded pixel data has shape {pixels.shape}; one 2D image is expected", path)
    if np.issubdtype(pixels.dtype, np.integer) and 0 < stored < allocated:
        pixels = pixels.astype(np.int32 if allocated <= 16 else np.int64)
        mask = (1 << stored) - 1
        pixels = pixels & mask
        if signed:
            sign = 1 << (stored - 1)
            pixels = (pixels ^ sign) - sign
    return pixels, 0 if reduced is None else reduced[1], warning


def _codestream_depth(ds: Dataset, codestream: CodestreamHeader, allocated: int, stored: int
                      ) -> tuple[int, int, str | None, bool]:
    """``(allocated, stored, warning, deeper)``: the Bits Allocated and Bits Stored to decode with, where the
    codestream's sample depth contradicts the header (set in ``ds`` in memory only, for the decoders), and whether
    the codestream is deeper than Bits Stored (then :func:`_stored_values` keeps the warning only if a value is
    wider)."""
    family, bits = codestream.family, codestream.bits
    if family != "JPEG 2000" and bits <= 8 < allocated:  # JPEG decoders give a byte a sample; pydicom sizes by BA
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, bits, bits - 1
        return 8, bits, (f"Bits Allocated is {allocated} but the {family} codestream holds {bits}-bit samples: "
                         f"read as {bits}-bit"), False
    if bits > stored:
        ds.BitsStored, ds.HighBit = bits, bits - 1  # so that the decoders keep those bits too
        return allocated, bits, (f"Bits Stored is {stored} but the {family} codestream holds {bits}-bit samples: "
                                 f"read as {bits}-bit"), True
    return allocated, stored, None, False


def _high_bit(ds: Dataset, path: Path, stored: int) -> int:
    """High Bit, which only places the stored bits (:mod:`.stored_bits`): absent or not one whole number, it is
    read as Bits Stored - 1, where the decoders put them."""
    try:
        return header_integer(ds, "HighBit", path, default=stored - 1)
    except CorruptFileError:
        return stored - 1


def _fit(pixels: np.ndarray, bits: int, signed: bool) -> bool:
    """Whether every integer value fits in ``bits`` bits of the given signedness."""
    if pixels.size == 0 or not np.issubdtype(pixels.dtype, np.integer):
        return False
    low, high = value_range(bits, signed)
    return low <= int(pixels.min()) and int(pixels.max()) <= high


def _settled_representation(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray, str | None]:
    """The stored values read with the Pixel Representation they show (:mod:`.pixel_representation`); where that
    is not the header's, the header is changed in memory only, so that the padding value and the LUTs are read
    the same way."""
    bits = header_integer(ds, "BitsStored", path, default=0) or header_integer(ds, "BitsAllocated", path)
    signed = header_integer(ds, "PixelRepresentation", path, default=0) == 1
    stored, settled, problem = settle_pixel_representation(stored, bits, signed)
    if settled != signed:
        ds.PixelRepresentation = int(settled)
    return stored, problem


def _check_rle_segment_lengths(caught: list[warnings.WarningMessage], path: Path) -> None:
    """Refuse RLE segments that decode to more bytes than Rows x Columns (pydicom keeps the first Rows x Columns
    and warns): the header does not describe the image. One byte more is the padding some encoders leave."""
    for warning in caught:
        found = _RLE_PADDING.search(str(warning.message))
        if found and int(found[1]) > int(found[2]) + 1:
            raise CorruptFileError(f"the RLE segments decode to {found[1]} bytes but Rows x Columns is {found[2]}: "
                                   "the header does not describe this pixel data", path)


def read_dicom_image(path: str | Path, network_size: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a single-frame greyscale DICOM radiograph.

    Returns ``(image, meta)``: ``image`` is float32 ``rows x columns`` after Modality LUT, VOI LUT
    (or the first window) and MONOCHROME1 inversion, so air is dark and bone bright; ``meta`` is
    described in :func:`PilletGANLib.load_cxr`. With ``network_size`` (the side the image will be resized to),
    ``image`` may be at reduced resolution (:mod:`~PilletGANLib.dicom.reduced_resolution`; ``meta`` says so):
    JPEG 2000 decoded at a coarser level of its pyramid, any other pixel data averaged over blocks once read through
    its LUTs and checked.
    """
    path = Path(path)
    header = read_dicom_header(path)
    check_radiograph_header(header, path)
    codestream = check_decodable(header, path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise _read_failure(path, err) from err
    ensure_transfer_syntax(ds, path)
    if "PixelData" not in ds:
        raise TruncatedFileError("the file ends before its Pixel Data; it is truncated, re-export it", path)
    supplied = [*_supply_absent_pixel_attributes(ds, path), _ignore_offset_table_without_lengths(ds, path)]
    stored, level, depth_problem = _stored_values(ds, path, codestream, network_size)
    stored, representation_problem = _settled_representation(ds, stored, path)
    padding, padding_problem = padding_mask(ds, stored, path)
    values, rescale_problem = apply_modality(stored, ds, path)
    values, voi_applied, voi_problem = apply_voi(values, ds)
    values = np.asarray(values, dtype=np.float32)
    photometric = _photometric_interpretation(ds, path)
    inverted = photometric == "MONOCHROME1"
    image = _oriented(values, inverted, padding)
    check_pixel_values(image, path, "after the header's LUTs")
    if padding is not None and not has_contrast(image):
        raise NotAnImageError(f"the header's pixel padding covers {padding.mean():.1%} of the pixels; what is left "
                              "holds no radiograph to analyse", path)
    check_contrast(image, path)
    _check_grey_levels(image, path)
    turn, orientation_problem = settle_orientation(image, descriptive_value(ds, "PatientOrientation"),
                                                   descriptive_value(ds, "ViewPosition"))
    # the polarity template reads a chest turned upright
    flip, shape_problem = settle_presentation_shape(turned(image, turn), photometric,
                                                    descriptive_value(ds, "PresentationLUTShape"))
    if flip:
        inverted = not inverted
        image = _oriented(values, inverted, padding)
    meta = dicom_meta(ds, path)
    meta.update({"voi_applied": voi_applied, "inverted": inverted, "reorientation": turn,
                 "reduced_resolution_level": level,
                 "padding_pixels": int(padding.sum()) if padding is not None else 0, "warnings": []})
    polarity_problem = polarity_warning(turned(image, turn), photometric, inverting_steps(ds, voi_applied))
    aspect_problem = pixel_aspect_warning(_spacing(ds)[0], descriptive_value(ds, "PixelAspectRatio"))
    for problem in (*supplied, depth_problem, representation_problem, padding_problem, rescale_problem, voi_problem,
                    shape_problem, polarity_problem, orientation_problem, aspect_problem):
        if problem is not None:
            logger.warning("%s: %s", path_text(path), problem)
            meta["warnings"].append(problem)
    if network_size and not level:  # averaged once read and checked, so that every decision is a full read's
        meta["reduced_resolution_level"] = level = reduction_level(max(image.shape), network_size)
        image = area_reduce(image, level) if level else image
    return image, meta


def _oriented(values: np.ndarray, invert: bool, padding: np.ndarray | None) -> np.ndarray:
    """``values`` (after the LUTs) inverted when ``invert``, with the padding pixels set to the darkest real value;
    ``values`` itself is left unchanged."""
    image = np.float32(values.max() + values.min()) - values if invert else values
    if padding is not None:
        image = image.copy() if image is values else image
        image[padding] = image[~padding].min()
    return image


def _supply_absent_pixel_attributes(ds: Dataset, path: Path) -> list[str]:
    """Give the in-memory dataset (never the file) the required Image Pixel attributes the decoders need and the
    header lacks or leaves empty, with the values the header checks assume for them; one warning for each."""
    defaults = {"PhotometricInterpretation": _DEFAULT_PHOTOMETRIC,
                **{k: _OPTIONAL_PIXEL_INTEGERS[k] for k in ("SamplesPerPixel", "PixelRepresentation")},
                "BitsStored": header_integer(ds, "BitsAllocated", path)}  # BitsStored absent: all allocated bits
    warnings = []
    for keyword, value in defaults.items():
        if parsed_value(ds, keyword, path) in (None, ""):
            setattr(ds, keyword, value)
            warnings.append(f"the header has no {keyword} (a required attribute); read as {value}")
    return warnings


def _ignore_offset_table_without_lengths(ds: Dataset, path: Path) -> str | None:
    """Remove from the in-memory dataset (never the file) an Extended Offset Table whose lengths are absent or
    empty, which the decoders would fail on (they find the frame without it); a warning when one was removed."""
    if "ExtendedOffsetTable" not in ds or parsed_value(ds, "ExtendedOffsetTableLengths", path) not in (None, b""):
        return None
    del ds.ExtendedOffsetTable
    if "ExtendedOffsetTableLengths" in ds:
        del ds.ExtendedOffsetTableLengths
    return "the header has an Extended Offset Table without its lengths; ignored (the frame is found without it)"


def check_pixel_values(image: np.ndarray, path: Path, stage: str) -> None:
    """Refuse float32 pixel values the intensity normalization cannot use: a value that is not finite, or a
    spread of values wider than float32 holds (the subtraction of the low percentile would overflow to infinity and
    the map would be NaN). ``stage`` says where the values come from, for the message."""
    if not np.isfinite(image).all():
        raise CorruptFileError(f"the pixel values are not finite {stage}", path)
    lowest, highest = float(image.min()), float(image.max())
    if highest - lowest > _FLOAT32_MAX:
        raise CorruptFileError(f"the pixel values {stage} span {lowest:g} to {highest:g}, wider than 32-bit floating "
                               "point arithmetic can normalize", path)


def check_contrast(image: np.ndarray, path: Path) -> None:
    """Refuse an image without contrast: its :data:`~.grey_levels.ROBUST_PERCENTILES` are equal, so at least 99 % of
    its pixels hold one value (a blank frame, a failed exposure, a rescale slope of 0) and no lesion map can be read from it."""
    low, high = robust_range(image)
    if not high > low:
        raise NotAnImageError(f"the image has no contrast: at least 99 % of its pixels hold the value {low:g}; "
                              "there is no radiograph to analyse", path)


def _check_grey_levels(image: np.ndarray, path: Path) -> None:
    """Refuse a DICOM image of fewer than :data:`MIN_GREY_LEVELS` grey levels (a bitmap, a Bits Stored of 1): no
    radiograph. Only DICOM: a manifest's lesion masks are binary images read by the same loader."""
    levels = grey_levels(image)
    if levels < MIN_GREY_LEVELS:
        raise NotAnImageError(f"the image holds {levels} grey levels, where a radiograph has hundreds (a bitmap, or a "
                              "header whose Bits Stored is too small); there is no radiograph to analyse", path)
