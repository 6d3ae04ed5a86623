"""The header's grey-level transforms (rescale, Modality LUT, VOI LUT or window, pixel padding, Presentation LUT
Shape): a broken attribute is named, one that destroys the image is left out or named as the cause, and none turns a
radiograph into a negative silently. Cases found by a hostile-input round over the real radiographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import DX_8BIT, write_variant
from PIL import Image
from pydicom.pixels.utils import pack_bits
from pydicom.uid import ExplicitVRLittleEndian

from PilletGANLib import errors, load_cxr
from PilletGANLib.dicom.padding import padding_mask
from PilletGANLib.dicom.polarity import WARN_BELOW, polarity_logit


@pytest.fixture()
def plain(dicom_dir: Path) -> np.ndarray:
    return load_cxr(dicom_dir / DX_8BIT)[0]


def test_the_polarity_score_reads_a_tiny_value_span_and_stays_undecided_on_a_flat_image(plain: np.ndarray) -> None:
    """A fixed floor on the span scored every image of a rescale slope of 1e-30 as a negative (-3.1), which then
    decided a Presentation LUT Shape inversion."""
    assert polarity_logit(plain * np.float32(1e-30)) == pytest.approx(polarity_logit(plain), abs=1e-3)
    assert polarity_logit(plain.astype(np.float64) * 1e-300) == pytest.approx(polarity_logit(plain), abs=1e-3)
    assert polarity_logit(np.full((64, 64), 1e-30, dtype=np.float32)) == 0.0


def test_a_tiny_rescale_slope_neither_warns_nor_lets_the_presentation_shape_invert(dicom_dir: Path, tmp_path: Path,
                                                                                   plain: np.ndarray) -> None:
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "tiny.dcm", RescaleSlope=1e-30, RescaleIntercept=0,
                                    PresentationLUTShape="INVERSE"))
    assert meta["inverted"] is False and polarity_logit(image) > 0
    np.testing.assert_allclose(image / image.max(), plain / plain.max(), rtol=1e-5)
    assert len(meta["warnings"]) == 1 and "INVERSE was ignored" in meta["warnings"][0]


def test_a_negative_rescale_slope_reads_the_same_with_and_without_a_window(dicom_dir: Path, tmp_path: Path) -> None:
    """pydicom's window output decreased under a negative slope, so a window silently undid the inversion the
    rescale made; now both read as the negative the header describes, with a warning naming the slope."""
    readings = [load_cxr(write_variant(dicom_dir, tmp_path / f"negative_{name}.dcm", RescaleSlope=-1, RescaleIntercept=255,
                                  **window)) for name, window in
                (("bare", {}), ("window", {"WindowCenter": 128, "WindowWidth": 256}))]
    for image, meta in readings:
        assert polarity_logit(image) < WARN_BELOW
        assert any("negative Rescale Slope" in w and "photographic negative" in w for w in meta["warnings"])
    assert readings[1][1]["voi_applied"] is True
    bare, windowed = (image.ravel() for image, _ in readings)
    assert np.corrcoef(bare, windowed)[0, 1] > 0.99


@pytest.mark.parametrize(("name", "window", "words"), [
    ("width_1", {"WindowCenter": 128, "WindowWidth": 1}, "leaves 2 grey levels"),
    ("clips_99_percent", {"WindowCenter": 246, "WindowWidth": 2}, "maps at least 99 % of the pixels to one value"),
    ("outside", {"WindowCenter": 1e6, "WindowWidth": 10}, "maps at least 99 % of the pixels to one value"),
])
def test_a_window_that_destroys_the_image_is_left_out_with_a_warning(dicom_dir: Path, tmp_path: Path,
                                                                    plain: np.ndarray, name: str, window: dict,
                                                                    words: str) -> None:
    """docs/reading.md promised it for a window that makes every pixel one value; a width of 1 gave a binary image
    analysed silently, and one clipping 99 % of the pixels refused the radiograph as having no contrast."""
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / f"{name}.dcm", **window))
    np.testing.assert_array_equal(image, plain)
    assert meta["voi_applied"] is False
    assert len(meta["warnings"]) == 1 and words in meta["warnings"][0] and "analysed without it" in meta["warnings"][0]


def test_an_empty_window_is_not_reported_as_applied(dicom_dir: Path, tmp_path: Path, plain: np.ndarray) -> None:
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "empty_window.dcm", WindowCenter="", WindowWidth=""))
    np.testing.assert_array_equal(image, plain)
    assert meta["voi_applied"] is False and meta["warnings"] == []


@pytest.mark.parametrize(("name", "changes", "words"), [
    ("slope_only", {"RescaleSlope": -1}, "RescaleSlope -1 without RescaleIntercept"),
    ("intercept_only", {"RescaleIntercept": -1000}, "RescaleIntercept -1000 without RescaleSlope"),
    ("both_empty", {"RescaleSlope": "", "RescaleIntercept": ""}, "Rescale Slope and Intercept are empty"),
])
def test_a_rescale_attribute_without_its_partner_is_applied_with_the_default_and_said(
        dicom_dir: Path, tmp_path: Path, plain: np.ndarray, name: str, changes: dict, words: str) -> None:
    """pydicom applies a rescale only when both are present: a slope of -1 alone was dropped silently (and empty
    ones raised a TypeError in its arithmetic)."""
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / f"{name}.dcm", **changes))
    assert any(words in w for w in meta["warnings"]), meta["warnings"]
    slope, intercept = changes.get("RescaleSlope") or 1, changes.get("RescaleIntercept") or 0
    np.testing.assert_allclose(image, slope * plain + intercept)
    if name == "slope_only":  # applied: the negative the header describes, warned as such
        assert any("negative Rescale Slope" in w for w in meta["warnings"])


@pytest.mark.parametrize(("slope", "intercept", "words"), [
    ("abc", "0", "RescaleSlope 'abc' is not a number"),
    ("NaN", "0", "RescaleSlope 'NaN' is not finite"),
    ("1", "0\\-1024", "RescaleIntercept ['0', '-1024'] holds 2 values"),
])
def test_a_rescale_that_is_not_one_finite_number_is_refused_by_name(dicom_dir: Path, tmp_path: Path, slope: str,
                                                                    intercept: str, words: str) -> None:
    """These surfaced as numpy's broadcasting or ufunc errors, or as 'the pixel values are not finite'."""
    path = write_variant(dicom_dir, tmp_path / "rescale.dcm")
    ds = pydicom.dcmread(path)
    ds.add_new(0x00281053, "LO", slope)  # as text (a wrong VR): pydicom would not hold 'abc' as a DS
    ds.add_new(0x00281052, "LO", intercept)
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(errors.CorruptFileError, match="must be one finite number") as caught:
        load_cxr(path)
    assert words in str(caught.value)


def _signed_with_border(dicom_dir: Path, folder: Path, padding: tuple[str, int]) -> Path:
    """The sample as signed 12-bit pixels (stored -1024 to -778) with a 20-pixel border stored as -2048, and a
    Pixel Padding Value of ``padding`` = (VR, value)."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pixels = ds.pixel_array.astype(np.int16) - 1024
    pixels[:20] = -2048
    ds.PixelData, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = pixels.tobytes(), 16, 12, 11, 1
    ds.add_new(0x00280120, *padding)
    path = folder / f"signed_{padding[0]}.dcm"
    ds.save_as(path, enforce_file_format=False)
    return path


@pytest.mark.parametrize("padding", [("SS", -2048), ("US", 63488)])
def test_a_signed_padding_value_is_found_whatever_vr_it_was_written_with(dicom_dir: Path, tmp_path: Path,
                                                                        padding: tuple[str, int]) -> None:
    """Its VR follows Pixel Representation: 63488 written as US over signed pixels is -2048 (it matched nothing, and
    a bright border went into the analysis)."""
    image, meta = load_cxr(_signed_with_border(dicom_dir, tmp_path, padding))
    assert meta["padding_pixels"] == 20 * image.shape[1] and meta["warnings"] == []
    assert image[:20].max() == image[20:].min()


@pytest.mark.parametrize(("vr", "value", "words"), [
    ("LO", "abc", "pixel padding is not whole numbers (PixelPaddingValue 'abc'); pixel padding ignored"),
    ("US", 65535, "pixel padding (65535) lies outside the values Bits Stored allows (0 to 255); nothing treated as "
            "padding"),
])
def test_pixel_padding_that_cannot_apply_is_ignored_with_a_warning(dicom_dir: Path, tmp_path: Path,
                                                                  plain: np.ndarray, vr: str, value: object,
                                                                  words: str) -> None:
    """Padding is optional: text refused the whole file at discovery ('the pixel data cannot be interpreted'), and a
    value outside Bits Stored matched nothing without a word."""
    path = write_variant(dicom_dir, tmp_path / f"padding_{vr}.dcm")
    ds = pydicom.dcmread(path)
    ds.add_new(0x00280120, vr, value)
    ds.save_as(path, enforce_file_format=False)
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert meta["padding_pixels"] == 0 and meta["warnings"] == [f"the header's {words}"]


def test_padding_that_covers_every_pixel_marks_nothing_with_a_warning() -> None:
    ds = pydicom.Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation, ds.PixelPaddingValue = 16, 12, 0, 0
    ds.PixelPaddingRangeLimit = 4095
    mask, warning = padding_mask(ds, np.arange(64, dtype=np.uint16).reshape(8, 8), Path("x.dcm"))
    assert mask is None and warning == "the header's pixel padding (0 to 4095) covers every pixel; padding ignored"
    ds.PixelPaddingRangeLimit = 10
    mask, warning = padding_mask(ds, np.arange(64, dtype=np.uint16).reshape(8, 8), Path("x.dcm"))
    assert warning is None and mask.sum() == 11


def _modality_lut(descriptor: list[int], data: bytes | int | None) -> pydicom.Sequence:
    item = pydicom.Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor
    if data is not None:
        item.add_new(0x00283006, "OW" if isinstance(data, bytes) else "US", data)  # LUT Data
    return pydicom.Sequence([item])


_WORDS = np.arange(512, dtype="<u2").tobytes()  # an identity LUT of 16-bit words


@pytest.mark.parametrize(("name", "descriptor", "data", "words"), [
    ("short", [256, 0, 16], _WORDS[:256], "announces 256 entries in its LUT Descriptor, its LUT Data holds 128"),
    ("zero_bits", [256, 0, 0], _WORDS[:512], "gives 0-bit entries in its LUT Descriptor, where 8 to 16 are defined"),
    ("no_data", [256, 0, 16], None, "has no LUT Data"),
    ("one_value", [256, 0, 16], 5, "announces 256 entries in its LUT Descriptor, its LUT Data holds 1"),
    ("two_numbers", [256, 0], _WORDS[:512], "has a LUT Descriptor of [256, 0], not three whole numbers"),
])
def test_a_modality_lut_that_cannot_be_read_is_named(dicom_dir: Path, tmp_path: Path, name: str,
                                                     descriptor: list[int], data: bytes | int | None, words: str) -> None:
    """These surfaced as pydicom's struct.error, NumPy's 'uint0', a KeyError and an IndexError (and one value of
    LUT Data as a TypeError from the first version of the check)."""
    path = write_variant(dicom_dir, tmp_path / f"{name}.dcm", ModalityLUTSequence=_modality_lut(descriptor, data))
    with pytest.raises(errors.CorruptFileError, match="the pixel values cannot be computed") as caught:
        load_cxr(path)
    assert f"the header's Modality LUT {words}" in str(caught.value)


@pytest.mark.parametrize(("name", "descriptor", "data", "note"), [
    ("long", [256, 0, 16], _WORDS, "LUT Data holds 512 entries, more than the 256 its descriptor announces"),
    ("bits_12", [256, 0, 12], _WORDS[:512], "12-bit entries read as 16-bit words"),
    ("packed_bytes", [256, 0, 8], np.arange(256, dtype=np.uint8).tobytes(), "8-bit entries packed two to a word"),
])
def test_a_modality_lut_a_lenient_reader_reads_is_read_with_a_note(dicom_dir: Path, tmp_path: Path, plain: np.ndarray,
                                                                  name: str, descriptor: list[int], data: bytes,
                                                                  note: str) -> None:
    """pydicom refused each (a struct.error, 'uint12'): the identity LUT now reads as the plain image, said."""
    lut = _modality_lut(descriptor, data)
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / f"{name}.dcm", ModalityLUTSequence=lut))
    np.testing.assert_array_equal(image, plain)
    assert len(meta["warnings"]) == 1 and meta["warnings"][0].startswith("the header's Modality LUT: ")
    assert note in meta["warnings"][0]


def test_a_standard_voi_lut_of_12_bit_entries_is_applied_without_a_note(dicom_dir: Path, tmp_path: Path,
                                                                       plain: np.ndarray) -> None:
    lut = _modality_lut([256, 0, 12], (np.arange(256, dtype="<u2") * 16).tobytes())
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "voi_12.dcm", VOILUTSequence=lut))
    assert meta["voi_applied"] is True and meta["warnings"] == []
    np.testing.assert_allclose(image, plain * 16)


def test_a_window_function_that_is_not_defined_is_named(dicom_dir: Path, tmp_path: Path, plain: np.ndarray) -> None:
    """Several values surfaced as "AttributeError: 'MultiValue' object has no attribute 'upper'"."""
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "functions.dcm", WindowCenter=128, WindowWidth=256,
                                    VOILUTFunction=["LINEAR", "SIGMOID"]))
    np.testing.assert_array_equal(image, plain)
    assert meta["warnings"] == ["the header's VOILUTFunction ['LINEAR', 'SIGMOID'] is not one of LINEAR, LINEAR_EXACT, "
                                "SIGMOID; the image is analysed without its window"]


def test_a_rescale_beyond_float32_is_named(dicom_dir: Path, tmp_path: Path) -> None:
    """It overflowed to infinity in the cast to float32 ('the pixel values are not finite'), with NumPy's warning."""
    with pytest.raises(errors.CorruptFileError, match=r"rescale \(slope 1e\+38, intercept 0\) gives pixel values "
                                                      "beyond what 32-bit floating point holds"):
        load_cxr(write_variant(dicom_dir, tmp_path / "huge.dcm", RescaleSlope=1e38, RescaleIntercept=0))


def test_padding_over_almost_every_pixel_is_named_as_the_reason(dicom_dir: Path, tmp_path: Path) -> None:
    """The message blamed a value no pixel held (the darkest real value the padding had been set to)."""
    path = write_variant(dicom_dir, tmp_path / "padded.dcm")
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    pixels.reshape(-1)[:-50] = 255  # all but 50 pixels are padding
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x00280120, "US", 255)
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(errors.NotAnImageError, match=r"pixel padding covers 99\.9% of the pixels"):
        load_cxr(path)


@pytest.mark.parametrize(("name", "warned"), [("understated_depth", True), ("overlay_in_bit_15", False)])
def test_bits_above_bits_stored_in_most_pixels_are_warned_of(dicom_dir: Path, tmp_path: Path, name: str,
                                                             warned: bool) -> None:
    """12-bit pixels labelled Bits Stored 8 were cleared to their low bits (16 grey levels of noise) silently; an
    overlay in an unused bit, which marks few pixels, is cleared without a word, as before."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pixels = ds.pixel_array.astype(np.uint16)
    if warned:
        pixels = pixels * 16
        ds.BitsStored, ds.HighBit = 8, 7
    else:
        pixels[10:20, 10:60] |= 1 << 15
        ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData, ds.BitsAllocated = pixels.tobytes(), 16
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=False)
    _, meta = load_cxr(path)
    expected = [w for w in meta["warnings"] if "hold bits above Bits Stored" in w]
    assert len(expected) == warned
    if warned:
        assert "(8 of 16 allocated)" in expected[0]


def test_a_dicom_bitmap_is_refused_as_no_radiograph(dicom_dir: Path, tmp_path: Path, plain: np.ndarray) -> None:
    """A 1-bit image (a mask or a scanned page exported as DICOM) was analysed, with a score and boxes. A binary PNG
    is still read: the manifests' lesion masks are such PNGs, read by the same loader."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData, ds.BitsAllocated, ds.BitsStored, ds.HighBit = pack_bits(plain > 120), 1, 1, 0
    bitmap = tmp_path / "bitmap.dcm"
    ds.save_as(bitmap, enforce_file_format=False)
    with pytest.raises(errors.NotAnImageError, match="the image holds 2 grey levels, where a radiograph has hundreds"):
        load_cxr(bitmap)
    mask = tmp_path / "mask.png"
    Image.fromarray(((plain > 120) * 255).astype(np.uint8)).save(mask)
    assert set(np.unique(load_cxr(mask)[0])) == {0.0, 255.0}
