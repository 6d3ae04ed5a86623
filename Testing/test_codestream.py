"""Encapsulated pixel data read as pydicom's decoders read it: the frame across fragments and offset tables, the
codestream header checked before decoding, RLE headers, and a codestream deeper than Bits Stored."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import JPEG_BASELINE, JPEG_LS, MONO1_J2K_LOSSLESS, MONO1_SHAPE, RLE
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.uid import JPEG2000Lossless

from PilletGANLib import errors, load_cxr
from PilletGANLib.dicom.reduced_resolution import area_reduce

#: A network side small enough for the 320 x 288 JPEG 2000 sample to take the half-resolution path.
HALF_RESOLUTION_NETWORK = max(MONO1_SHAPE) // 4
BOMB_SIDE = 20000


def _codestream(ds: pydicom.Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _bomb(name: str, codestream: bytes) -> bytes:
    """``codestream`` declaring BOMB_SIDE x BOMB_SIDE pixels in its SIZ (JPEG 2000) or SOF (JPEG, JPEG-LS)."""
    data = bytearray(codestream)
    if name == MONO1_J2K_LOSSLESS:
        siz = data.index(b"\xff\x51")
        struct.pack_into(">IIIIII", data, siz + 6, BOMB_SIDE, BOMB_SIDE, 0, 0, BOMB_SIDE, BOMB_SIDE)
    else:
        sof = data.index(b"\xff\xf7" if name == JPEG_LS else b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, BOMB_SIDE, BOMB_SIDE)
    return bytes(data)


def _encapsulated(fragments: list[bytes], table: list[int] | None = None) -> bytes:
    """Encapsulated Pixel Data of ``fragments`` as given (empty ones included, which pydicom's encapsulate refuses),
    after a Basic Offset Table of ``table``."""
    items = [struct.pack(f"<{len(table or [])}I", *(table or [])), *fragments]
    return b"".join(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(item)) + item for item in items)


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("name", [MONO1_J2K_LOSSLESS, JPEG_BASELINE, JPEG_LS])
@pytest.mark.parametrize("layout", ["after an empty fragment", "split after 16 bytes", "extended offset table"])
def test_a_codestream_bomb_is_refused_before_decoding_wherever_its_header_lies(dicom_dir: Path, tmp_path: Path,
                                                                               name: str, layout: str) -> None:
    """The decoders join every fragment of a frame (or follow the Extended Offset Table): so does the check."""
    ds = pydicom.dcmread(dicom_dir / name)
    codestream = _codestream(ds)
    bomb = _bomb(name, codestream)
    if layout == "after an empty fragment":
        ds.PixelData = _encapsulated([b"", bomb])
    elif layout == "split after 16 bytes":
        ds.PixelData = _encapsulated([bomb[:16], bomb[16:]])
    else:  # the table points at the second fragment; the first is a valid image the decoders never read
        _, offsets, lengths = encapsulate_extended([codestream, bomb])
        ds.PixelData = _encapsulated([codestream, bomb])
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = offsets[8:], lengths[8:]
    path = _save(ds, tmp_path / "bomb.dcm")
    with pytest.raises(errors.CorruptFileError, match=f"declares {BOMB_SIDE} x {BOMB_SIDE} pixels"):
        load_cxr(path, 256)


@pytest.mark.parametrize("name", [MONO1_J2K_LOSSLESS, JPEG_BASELINE])
def test_a_frame_split_across_fragments_reads_as_the_whole_frame(dicom_dir: Path, tmp_path: Path, name: str) -> None:
    ds = pydicom.dcmread(dicom_dir / name)
    expected, _ = load_cxr(dicom_dir / name)
    codestream = _codestream(ds)
    for fragments in ([codestream[:16], codestream[16:]], [b"", codestream], [codestream[:4], codestream[4:]]):
        ds.PixelData = _encapsulated(fragments)
        image, _ = load_cxr(_save(ds, tmp_path / "split.dcm"))
        np.testing.assert_array_equal(image, expected)


def test_a_jpeg_header_after_large_application_segments_is_found(dicom_dir: Path, tmp_path: Path) -> None:
    """An SOF after 128 KiB of APP segments (an ICC profile, a thumbnail) lies beyond the first read."""
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    expected, _ = load_cxr(dicom_dir / JPEG_BASELINE)
    codestream = _codestream(ds)
    app = b"".join(b"\xff\xe9" + struct.pack(">H", 65535) + bytes(65533) for _ in range(2))
    ds.PixelData = encapsulate([codestream[:2] + app + codestream[2:]])
    image, _ = load_cxr(_save(ds, tmp_path / "app.dcm"))
    np.testing.assert_array_equal(image, expected)


def test_reduced_resolution_reads_the_frame_the_extended_offset_table_names(dicom_dir: Path, tmp_path: Path) -> None:
    """Both decodes read the second fragment, as the table says (the first holds another image)."""
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    flipped = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    flipped.PixelData = ds.pixel_array[::-1].copy().tobytes()  # upside down: far from the original
    flipped.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    flipped.compress(JPEG2000Lossless)
    expected, _ = load_cxr(_save(flipped, tmp_path / "flipped.dcm"))
    _, offsets, lengths = encapsulate_extended([_codestream(ds), _codestream(flipped)])
    ds.PixelData = _encapsulated([_codestream(ds), _codestream(flipped)])
    ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = offsets[8:], lengths[8:]
    path = _save(ds, tmp_path / "table.dcm")
    full, _ = load_cxr(path)
    half, meta = load_cxr(path, HALF_RESOLUTION_NETWORK)
    assert meta["reduced_resolution_level"]
    np.testing.assert_array_equal(full, expected)
    level = meta["reduced_resolution_level"]
    assert np.corrcoef(half.ravel(), area_reduce(expected, level).ravel())[0, 1] > 0.99
    original, _ = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS)
    assert np.corrcoef(original.ravel(), expected.ravel())[0, 1] < 0.9


@pytest.mark.parametrize("table", ["Basic", "Extended"])
def test_an_offset_table_of_two_frames_is_refused_before_decoding(dicom_dir: Path, tmp_path: Path,
                                                                  table: str) -> None:
    """Number of Frames absent, the table lists two: the decoders would decode both (the second may be a bomb)."""
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    codestream = _codestream(ds)
    bomb = _bomb(MONO1_J2K_LOSSLESS, codestream)
    if table == "Basic":
        ds.PixelData = encapsulate([codestream, bomb])
    else:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended([codestream, bomb])
    path = _save(ds, tmp_path / "two.dcm")
    for network in (None, HALF_RESOLUTION_NETWORK):
        with pytest.raises(errors.MultiFrameError, match=f"{table} Offset Table lists 2 frames"):
            load_cxr(path, network)


def test_a_codestream_deeper_than_bits_stored_is_read_at_its_own_depth(dicom_dir: Path, tmp_path: Path) -> None:
    """Clearing the bits above Bits Stored would keep the low bits of each value: noise, not the image."""
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    expected, _ = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS)
    depth = ds.BitsStored
    ds.BitsStored, ds.HighBit = 8, 7
    image, meta = load_cxr(_save(ds, tmp_path / "shallow.dcm"))
    np.testing.assert_array_equal(image, expected)
    assert meta["warnings"] == [f"Bits Stored is 8 but the JPEG 2000 codestream holds {depth}-bit samples: read "
                                f"as {depth}-bit"]


def _rle_header(ds: pydicom.Dataset) -> tuple[bytearray, list[int]]:
    frame = bytearray(_codestream(ds))
    count, *offsets = struct.unpack_from("<16I", frame)
    return frame, offsets[:count]


@pytest.mark.parametrize("damage", ["no segments", "one segment too many", "first offset not 64",
                                    "offset past the frame", "offsets out of order"])
def test_a_broken_rle_header_is_refused_before_decoding(dicom_dir: Path, tmp_path: Path, damage: str) -> None:
    ds = pydicom.dcmread(dicom_dir / RLE)
    frame, offsets = _rle_header(ds)
    assert len(offsets) == 2  # 16-bit samples: one segment per byte
    header = {"no segments": [0, *offsets], "one segment too many": [3, *offsets, offsets[-1] + 2],
              "first offset not 64": [2, 66, offsets[1]], "offset past the frame": [2, 64, len(frame) + 10],
              "offsets out of order": [2, offsets[1], 64]}[damage]
    struct.pack_into(f"<{len(header)}I", frame, 0, *header)
    ds.PixelData = encapsulate([bytes(frame)])
    with pytest.raises(errors.CorruptFileError, match="RLE frame header lists"):
        load_cxr(_save(ds, tmp_path / "rle.dcm"))


def test_rle_segments_longer_than_the_header_says_are_refused(dicom_dir: Path, tmp_path: Path) -> None:
    """Half the Rows over a whole frame: pydicom keeps the first half and warns; the reader refuses."""
    ds = pydicom.dcmread(dicom_dir / RLE)
    ds.Rows = ds.Rows // 2
    with pytest.raises(errors.CorruptFileError, match=r"RLE segments decode to \d+ bytes but Rows x Columns is"):
        load_cxr(_save(ds, tmp_path / "rows.dcm"))


def test_compressed_fragments_under_an_uncompressed_syntax_are_named(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    path = _save(ds, tmp_path / "mislabelled.dcm")
    with pytest.raises(errors.CorruptFileError, match=r"encapsulated fragments \(compressed data\) but the transfer "
                                                      "syntax Explicit VR Little Endian is uncompressed"):
        load_cxr(path)


def test_a_damaged_jpeg_inside_a_whole_file_is_named_damaged_not_truncated(dicom_dir: Path, tmp_path: Path) -> None:
    """A decoder's "truncated" is about the codestream: the file around it was read whole."""
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    codestream = bytearray(_codestream(ds))
    sof = codestream.index(b"\xff\xc0")
    struct.pack_into(">H", codestream, sof + 2, 0xFFF0)  # the frame header's length runs past the stream
    ds.PixelData = encapsulate([bytes(codestream)])
    with pytest.raises(errors.CorruptFileError, match=r"JPEG Baseline \(Process 1\) pixel data cannot be decoded") as raised:
        load_cxr(_save(ds, tmp_path / "damaged.dcm"))
    assert not isinstance(raised.value, errors.TruncatedFileError)
