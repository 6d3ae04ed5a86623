"""The image size a compressed codestream declares, read from its own header before anything decodes it.

A decoder allocates what the codestream says, not what the DICOM header says: a JPEG 2000 codestream that
claims 20000 x 20000 pixels inside a 1955 x 1841 image makes the decoder allocate gigabytes. The check here
reads only the start of the first frame of encapsulated Pixel Data, assembled as pydicom's decoders assemble it
(the Extended Offset Table's first frame when the table is present, else every fragment joined: a frame may be
split across fragments anywhere, an empty first fragment included; an offset table listing more than one frame is
refused), and compares the size, number of components and bit depth declared by the JPEG 2000 ``SIZ`` marker
segment, the JPEG ``SOF`` marker segment or the JPEG-LS ``SOF55`` marker segment with Rows, Columns, Samples per
Pixel and Bits Allocated.
An RLE Lossless frame's 64-byte header (segment count and offsets) is checked the same way.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets
from pydicom.uid import UID, RLELossless

from ..errors import CorruptFileError, MultiFrameError, TruncatedFileError

__all__ = ["CodestreamHeader", "check_codestream", "codestream_header", "frame_head", "pixel_data_stream",
           "starts_with_item"]

#: Bytes of the first frame read to find its header; read again 16 times larger while the header is not found in
#: them (JPEG application segments before the frame header, a JP2 file's metadata boxes), up to :data:`MAX_HEAD_BYTES`.
HEAD_BYTES = 65536
MAX_HEAD_BYTES = 16 * 2**20
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
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"
#: An RLE Lossless frame header: the number of segments, then 15 segment offsets (PS3.5 G.3.1).
_RLE_HEADER = struct.Struct("<16I")


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
    #: JPEG 2000 wavelet decomposition levels of the main header's COD marker segment (``None``: not found, or not
    #: JPEG 2000); the image can be decoded at up to this many halvings of its resolution.
    decompositions: int | None = None


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
                            (xosiz, yosiz), _jpeg2000_decompositions(data, start + 2))


def _jpeg2000_decompositions(data: bytes, position: int) -> int | None:
    """The decomposition levels of the COD marker segment among the main header's segments, which start at
    ``position`` (after SOC); ``None`` when the main header ends (SOT) or the data does before one is found."""
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0x90:  # SOT: the first tile-part, the main header is over
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker == 0x52:  # COD: Lcod, Scod, SGcod (4 bytes), then SPcod starting with the decomposition levels
            return data[position + 9] if length >= 12 and position + 10 <= len(data) else None
        position += 2 + length
    return None


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


@contextmanager
def pixel_data_stream(ds: Dataset, path: Path) -> Iterator[BinaryIO | None]:
    """A binary stream at the start of ``ds``'s Pixel Data value: ``path`` itself when the value was left on disk
    (``ds`` read with deferred values), else the value in memory; ``None`` without Pixel Data bytes."""
    element = ds.get_item("PixelData", keep_deferred=True)
    if isinstance(element, RawDataElement) and element.value is None:
        with open(path, "rb") as handle:
            handle.seek(element.value_tell)
            yield handle
        return
    value = getattr(element, "value", None)
    yield io.BytesIO(value) if isinstance(value, (bytes, bytearray)) else None


def starts_with_item(ds: Dataset, path: Path) -> bool:
    """Whether ``ds``'s Pixel Data value starts with an Item tag, as encapsulated (compressed) pixel data does."""
    with pixel_data_stream(ds, path) as stream:
        return stream is not None and stream.read(4) == _ITEM


def frame_head(ds: Dataset, path: Path, limit: int = HEAD_BYTES) -> tuple[bytes, int]:
    """``(head, length)``: the first ``limit`` bytes of the first frame of ``ds``'s encapsulated Pixel Data and
    the frame's whole length, assembled as pydicom's decoders assemble it, read from ``path`` without loading the
    rest (``ds`` read with deferred values) or from memory when already loaded.

    Raises:
        CorruptFileError: the item structure is broken before the frame's start.
        MultiFrameError: the Basic or Extended Offset Table lists more than one frame.
    """
    with pixel_data_stream(ds, path) as stream:
        return (b"", 0) if stream is None else _frame_head(stream, _extended_offsets(ds, path), path, limit)


def _extended_offsets(ds: Dataset, path: Path) -> tuple[int, int] | None:
    """The first frame's (offset, length) from the Extended Offset Table, when it has both offsets and lengths;
    :class:`MultiFrameError` when the table lists more than one frame (the decoders would decode every one)."""
    offsets, lengths = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    if not offsets or not lengths or len(offsets) < 8 or len(lengths) < 8:
        return None
    if len(offsets) > 8:
        raise MultiFrameError(f"the Extended Offset Table lists {len(offsets) // 8} frames; one image is expected",
                              path)
    return struct.unpack_from("<Q", offsets)[0], struct.unpack_from("<Q", lengths)[0]


def _frame_head(fp: BinaryIO, extended: tuple[int, int] | None, path: Path, limit: int) -> tuple[bytes, int]:
    """The first frame's head and length from ``fp``, positioned at the Basic Offset Table item."""
    try:
        basic = parse_basic_offsets(fp)
    except (ValueError, struct.error) as err:
        raise CorruptFileError("the encapsulated Pixel Data does not start with its Basic Offset Table item",
                               path) from err
    first = fp.tell()
    if extended is not None:  # one contiguous frame: the decoders skip the item header at its offset
        offset, length = extended
        fp.seek(first + offset + 8)
        return fp.read(min(length, limit)), length
    if len(basic) > 1:
        raise MultiFrameError(f"the Basic Offset Table lists {len(basic)} frames; one image is expected", path)
    # with one offset or none, the decoders join every fragment into the frame, whatever the offset says
    head, length = bytearray(), 0
    while True:
        item = fp.read(8)
        if len(item) < 8 or item[:4] == _SEQUENCE_END:
            break
        if item[:4] != _ITEM:
            if length == 0:
                raise CorruptFileError("the encapsulated Pixel Data has no fragment item after its Basic Offset "
                                       "Table", path)
            break
        (size,) = struct.unpack_from("<I", item, 4)
        wanted = min(size, limit - len(head))
        chunk = fp.read(wanted)
        head += chunk
        length += size
        if len(chunk) < wanted:
            break
        fp.seek(size - wanted, 1)
    if length == 0 and not head:
        raise TruncatedFileError("the encapsulated Pixel Data ends before its first fragment", path)
    return bytes(head), length


def check_codestream(ds: Dataset, path: Path, syntax: UID) -> CodestreamHeader | None:
    """Refuse pixel data whose codestream declares another image than the header, before any decoder sees it;
    return what the codestream declares (``None`` for a syntax without a codestream header read here).

    Raises:
        CorruptFileError: the codestream header is missing, or its rows, columns, components or bit depth
            disagree with Rows, Columns, Samples per Pixel or Bits Allocated; an RLE frame header with the wrong
            number of segments or offsets outside the frame.
        MultiFrameError: the Basic or Extended Offset Table lists more than one frame.
    """
    if syntax == RLELossless:
        _check_rle_header(ds, path)
        return None
    family = _family(syntax)
    if family is None:
        return None
    limit = HEAD_BYTES
    while True:
        head, length = frame_head(ds, path, limit)
        declared = codestream_header(head, syntax)
        if declared is not None or len(head) >= length or limit >= MAX_HEAD_BYTES:
            break
        limit *= 16
    if not head:
        return None
    if declared is None:
        raise CorruptFileError(f"the first frame of Pixel Data is not a {family} codestream (no frame header in its "
                               f"first {len(head)} bytes); it cannot be decoded as {syntax.name}", path)
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, allocated = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    if (declared.rows, declared.columns) != (rows, columns) or declared.components != samples \
            or declared.bits > allocated:
        raise CorruptFileError(
            f"the {family} codestream declares {declared.rows} x {declared.columns} pixels, {declared.components} "
            f"component(s) of {declared.bits} bits, but the header {rows} x {columns}, {samples} of at most "
            f"{allocated} bits (rows x columns); refused before decoding", path)
    return declared


def _check_rle_header(ds: Dataset, path: Path) -> None:
    """The RLE frame header: one segment per byte of each sample, the first at byte 64, in order, inside the frame."""
    head, length = frame_head(ds, path, _RLE_HEADER.size)
    if not head:
        return
    if len(head) < _RLE_HEADER.size:
        raise CorruptFileError(f"the RLE frame is {length} bytes, shorter than its 64-byte header", path)
    count, *offsets = _RLE_HEADER.unpack(head)
    expected = int(ds.get("SamplesPerPixel", 1) or 1) * -(-int(ds.BitsAllocated) // 8)
    used = offsets[:count]
    if count != expected or used[0] != 64 or any(b <= a for a, b in itertools.pairwise(used)) or used[-1] >= length:
        raise CorruptFileError(
            f"the RLE frame header lists {count} segment(s) at offsets {used[:4]}{' ...' if count > 4 else ''} in a "
            f"{length}-byte frame; Samples per Pixel and Bits Allocated need {expected}, the first at byte 64, in "
            "order and inside the frame", path)
