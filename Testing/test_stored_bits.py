"""Where the stored bits sit (High Bit, Bits Stored against the words themselves), the header's Bits Allocated,
and Pixel Data far longer than the header describes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import DX_8BIT, JPEG_BASELINE, MONO1_J2K_LOSSLESS
from pydicom.uid import ExplicitVRLittleEndian

from PilletGANLib import errors, load_cxr


def _words(dicom_dir: Path, target: Path, words: np.ndarray, allocated: int, stored: int, high_bit: int) -> Path:
    """The 8-bit sample's header over ``words`` of ``allocated`` bits, labelled ``stored`` / ``high_bit``."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, high_bit
    ds.PixelData = words.astype(f"<u{allocated // 8}").tobytes()
    ds.save_as(target, enforce_file_format=False)
    return target


@pytest.fixture
def anatomy(dicom_dir: Path) -> np.ndarray:
    return pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array.astype(np.int64) * 16  # 12-bit values


def test_values_placed_at_high_bit_are_read_from_there(dicom_dir: Path, tmp_path: Path, anatomy: np.ndarray) -> None:
    """Legacy MSB-aligned data: 12 stored bits at bits 4-15, as High Bit 15 says. pydicom keeps bits 0-11."""
    expected, _ = load_cxr(_words(dicom_dir, tmp_path / "lsb.dcm", anatomy, 16, 12, 11))
    image, meta = load_cxr(_words(dicom_dir, tmp_path / "msb.dcm", anatomy << 4, 16, 12, 15))
    np.testing.assert_array_equal(image, expected)
    assert [w for w in meta["warnings"] if w.startswith("High Bit 15 places the 12 stored bits at bits 4-15")]


def test_a_high_bit_the_words_do_not_follow_is_ignored(dicom_dir: Path, tmp_path: Path, anatomy: np.ndarray) -> None:
    """High Bit 15 over values in bits 0-11 (the usual header slip): read as stored, without a word."""
    expected, _ = load_cxr(_words(dicom_dir, tmp_path / "lsb.dcm", anatomy, 16, 12, 11))
    image, meta = load_cxr(_words(dicom_dir, tmp_path / "slip.dcm", anatomy, 16, 12, 15))
    np.testing.assert_array_equal(image, expected)
    assert meta["warnings"] == []


def test_bits_stored_that_names_no_image_reads_the_whole_words(dicom_dir: Path, tmp_path: Path,
                                                               anatomy: np.ndarray) -> None:
    """32-bit words holding the image in bits 16-27, labelled Bits Stored 16: the low 16 bits are empty, so the
    image is no contrast at all when cleared as the header says; the whole words hold it."""
    expected, _ = load_cxr(_words(dicom_dir, tmp_path / "plain.dcm", anatomy, 16, 12, 11))
    image, meta = load_cxr(_words(dicom_dir, tmp_path / "understated.dcm", anatomy << 16, 32, 16, 15))
    np.testing.assert_allclose(image, expected * 65536, rtol=1e-6)
    assert [w for w in meta["warnings"] if w.startswith("Bits Stored 16 leaves no image") and "read as 32-bit" in w]


def test_a_codestream_deeper_than_bits_stored_whose_values_fit_is_no_warning(dicom_dir: Path, tmp_path: Path) -> None:
    """DCMTK writes lossless JPEG of 15-bit data at 16-bit precision: no value is wider than Bits Stored, so there
    is nothing to warn of (a J2K codestream encoded at one bit more than Bits Stored stands in for it here)."""
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    expected, _ = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS)
    pixels = ds.pixel_array
    ds.BitsStored, ds.HighBit = ds.BitsStored + 1, ds.BitsStored
    ds.compress(ds.file_meta.TransferSyntaxUID, pixels)
    ds.BitsStored, ds.HighBit = ds.BitsStored - 1, ds.BitsStored - 2
    path = tmp_path / "container_depth.dcm"
    ds.save_as(path)
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, expected)
    assert meta["warnings"] == []


@pytest.mark.parametrize(("allocated", "kind", "words"), [
    (24, errors.UnsupportedTransferSyntaxError, "24-bit words cannot be decoded"),
    (12, errors.CorruptFileError, "retired packed ACR-NEMA")])
def test_bits_allocated_no_decoder_reads_is_refused_from_the_header(dicom_dir: Path, tmp_path: Path, allocated: int,
                                                                    kind: type, words: str) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.BitsAllocated = allocated
    ds.save_as(tmp_path / "odd.dcm")
    with pytest.raises(kind, match=words):
        load_cxr(tmp_path / "odd.dcm")


def test_pixel_data_several_times_what_the_header_describes_is_named(dicom_dir: Path, tmp_path: Path) -> None:
    """Colour samples under a MONOCHROME2 header: pydicom read three frames and the message spoke of multi-frame."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.PixelData = np.repeat(ds.pixel_array[..., None], 3, axis=2).tobytes()
    ds.save_as(tmp_path / "rgb_bytes.dcm")
    with pytest.raises(errors.CorruptFileError, match=r"3\.0 times the 65536 that 256 x 256 pixels of 8 bits need"):
        load_cxr(tmp_path / "rgb_bytes.dcm")


def _with_pixel_data_first(source: Path, target: Path, pixels: bytes) -> Path:
    """``source`` (Explicit VR Little Endian) with a second Pixel Data element, holding ``pixels``, written before
    its own."""
    ds = pydicom.dcmread(source, defer_size=1024)
    at = ds.get_item("PixelData", keep_deferred=True).value_tell - 12  # the element's header: tag, VR, 0, length
    data = source.read_bytes()
    extra = b"\xe0\x7f\x10\x00OW\x00\x00" + len(pixels).to_bytes(4, "little") + pixels
    target.write_bytes(data[:at] + extra + data[at:])
    return target


def test_pixel_data_held_twice_is_refused_and_an_icon_is_not(dicom_dir: Path, tmp_path: Path) -> None:
    """pydicom keeps the last of two Pixel Data elements (an inverted copy here was analysed, the polarity warning
    blaming the header); the Pixel Data of an Icon Image Sequence item is the icon's, not a second image."""
    plain = _words(dicom_dir, tmp_path / "plain.dcm", pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array, 16, 8, 7)
    inverted = (255 - pydicom.dcmread(plain).pixel_array).astype("<u2").tobytes()
    with pytest.raises(errors.CorruptFileError, match=r"Pixel Data twice"):
        load_cxr(_with_pixel_data_first(plain, tmp_path / "twice.dcm", inverted))
    ds = pydicom.dcmread(plain)
    icon = pydicom.Dataset()
    icon.Rows = icon.Columns = 8
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.PixelData = bytes(64)
    ds.IconImageSequence = pydicom.Sequence([icon])
    ds.save_as(tmp_path / "icon.dcm", enforce_file_format=False)
    np.testing.assert_array_equal(load_cxr(tmp_path / "icon.dcm")[0], load_cxr(plain)[0])


def test_an_8_bit_jpeg_under_a_16_bit_header_is_read_at_8_bits(dicom_dir: Path, tmp_path: Path) -> None:
    """pydicom sized its buffer by Bits Allocated 16 and failed with a numpy broadcast error ("damaged")."""
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    expected, _ = load_cxr(dicom_dir / JPEG_BASELINE)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.save_as(tmp_path / "wide_header.dcm")
    image, meta = load_cxr(tmp_path / "wide_header.dcm")
    np.testing.assert_array_equal(image, expected)
    assert meta["warnings"] == ["Bits Allocated is 16 but the JPEG codestream holds 8-bit samples: read as 8-bit"]
