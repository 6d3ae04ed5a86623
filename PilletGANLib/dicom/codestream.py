"""The image size a compressed codestream declares, read from its own header before anything decodes it.

A decoder allocates what the codestream says, not what the DICOM header says: a JPEG 2000 codestream that
claims 20000 x 20000 pixels inside a 1955 x 1841 image makes the decoder allocate gigabytes. The check here
reads only the first bytes of the first fragment of encapsulated Pixel Data and compares the size, number
of components and bit depth declared by the JPEG 2000 ``SIZ`` marker segment, the JPEG ``SOF`` marker
segment or the JPEG-LS ``SOF55`` marker segment with Rows, Columns, Samples per Pixel and Bits Allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..errors import CorruptFileError, TruncatedFileError

__all__ = ["CodestreamHeader", "check_codestream", "codestream_header", "first_fragment_head"]

#: Bytes of the first fragment read to find its header (a JPEG header with large tables fits easily).
HEAD_BYTES = 65536
#: Transfer syntaxes by codestream family.
_JPEG2000 = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
                       "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                       "1.2.840.10008.1.2.4.203"})
_JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_JPEG = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                   "1.2.840.10008.1.2.4.70"})
#: JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8, DAC CC); JPEG-LS uses F7 (SOF55).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOF55 = 0xF7
_ITEM = b"\xfe\xff\x00\xe0"


@dataclass(frozen=True)
class CodestreamHeader:
    """What a codestream's own header declares."""

    family: str  # "JPEG 2000", "JPEG" or "JPEG-LS"
    rows: int
    columns: int
    components: int
    bits: int
    signed: bool = False
    #: JPEG 2000 image offset ``(XOsiz, YOsiz)`` on the reference grid; ``(0, 0)`` for JPEG and JPEG-LS.
    offset: tuple[int, int] = (0, 0)


def _family(syntax: UID) -> str | None:
    if syntax in _JPEG2000:
        return "JPEG 2000"
    if syntax in _JPEG_LS:
        return "JPEG-LS"
    if syntax in _JPEG:
        return "JPEG"
    return None


def _jpeg2000_header(data: bytes) -> CodestreamHeader | None:
    """SIZ of a raw codestream or of the ``jp2c`` box of a JP2 file: sizes are ``Xsiz - XOsiz``, ``Ysiz - YOsiz``."""
    start = data.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(data) < start + 4 + 38 + 3:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", data, start + 8)
    (components,) = struct.unpack_from(">H", data, start + 40)
    bits, signed = (data[start + 42] & 0x7F) + 1, bool(data[start + 42] & 0x80)
    return CodestreamHeader("JPEG 2000", max(0, ysiz - yosiz), max(0, xsiz - xosiz), components, bits, signed,
                            (xosiz, yosiz))


def _sof_header(data: bytes, family: str) -> CodestreamHeader | None:
    """The first SOF (JPEG) or SOF55 (JPEG-LS) marker segment: precision, lines, samples per line, components."""
    if not data.startswith(b"\xff\xd8"):
        return None
    position = 2
    wanted = {_SOF55} if family == "JPEG-LS" else _SOF_MARKERS
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in wanted:
            if position + 10 > len(data):
                return None
            bits, rows, columns, components = struct.unpack_from(">BHHB", data, position + 4)
            return CodestreamHeader(family, rows, columns, components, bits)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def codestream_header(data: bytes, syntax: str) -> CodestreamHeader | None:
    """The header declared by the start of a codestream of transfer syntax ``syntax``, or ``None`` when the
    syntax has no codestream header this module reads or none can be found in ``data``."""
    family = _family(UID(syntax))
    if family is None:
        return None
    return _jpeg2000_header(data) if family == "JPEG 2000" else _sof_header(data, family)


def first_fragment_head(ds: Dataset, path: Path, limit: int = HEAD_BYTES) -> bytes:
    """The first ``limit`` bytes of the first fragment of ``ds``'s encapsulated Pixel Data, read from ``path``
    without loading the rest (``ds`` read with deferred values) or from memory when already loaded."""
    element = ds.get_item("PixelData", keep_deferred=True)
    if element is None:
        return b""
    if isinstance(element, RawDataElement) and element.value is None:
        with open(path, "rb") as handle:
            def read(offset: int, size: int) -> bytes:
                handle.seek(element.value_tell + offset)
                return handle.read(size)
            return _first_fragment(read, path, limit)
    value = element.value
    if not isinstance(value, (bytes, bytearray)):
        return b""
    return _first_fragment(lambda offset, size: bytes(value[offset: offset + size]), path, limit)


def _first_fragment(read: Callable[[int, int], bytes], path: Path, limit: int) -> bytes:
    """Skip the Basic Offset Table item and return the start of the next item's value."""
    table = read(0, 8)
    if len(table) < 8 or table[:4] != _ITEM:
        raise CorruptFileError("the encapsulated Pixel Data does not start with its Basic Offset Table item", path)
    (table_length,) = struct.unpack_from("<I", table, 4)
    item = read(8 + table_length, 8)
    if len(item) < 8:
        raise TruncatedFileError("the encapsulated Pixel Data ends before its first fragment", path)
    if item[:4] != _ITEM:
        raise CorruptFileError("the encapsulated Pixel Data has no fragment item after its Basic Offset Table", path)
    (length,) = struct.unpack_from("<I", item, 4)
    return read(16 + table_length, min(length, limit))


def check_codestream(ds: Dataset, path: Path, syntax: UID) -> None:
    """Refuse pixel data whose codestream declares another size than the header, before any decoder sees it.

    Raises:
        CorruptFileError: the codestream header is missing, or its rows, columns, components or bit depth
            disagree with Rows, Columns, Samples per Pixel or Bits Allocated.
    """
    family = _family(syntax)
    if family is None:
        return
    head = first_fragment_head(ds, path)
    if not head:
        return
    declared = codestream_header(head, syntax)
    if declared is None:
        raise CorruptFileError(f"the first fragment of Pixel Data is not a {family} codestream (no frame header "
                               f"found); it cannot be decoded as {syntax.name}", path)
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, allocated = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    if (declared.rows, declared.columns) != (rows, columns) or declared.components != samples \
            or declared.bits > allocated:
        raise CorruptFileError(
            f"the {family} codestream declares {declared.rows} x {declared.columns} pixels, {declared.components} "
            f"component(s) of {declared.bits} bits, but the header {rows} x {columns}, {samples} of at most "
            f"{allocated} bits (rows x columns); refused before decoding", path)
