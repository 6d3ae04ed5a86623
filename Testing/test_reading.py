"""Reading chest radiographs (the project's samples in every encoding, and the real files) and refusing broken
files with their own messages."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    JPEG_HEADER_MONO1,
    JPEG_LS,
    JPEG_SPACING_MM,
    MONO1_J2K_LOSSLESS,
    MONO1_J2K_LOSSY,
    MONO1_SHAPE,
    MONO1_UNCOMPRESSED,
    RLE,
    SAMPLE_FILES,
    SAMPLE_SHAPE,
    VOI_LUT_16BIT,
    write_variant,
)
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from PilletGANLib import errors, load_cxr
from PilletGANLib.dicom.polarity import WARN_BELOW, polarity_logit
from PilletGANLib.dicom.reader import check_radiograph_header, read_dicom_header
from PilletGANLib.inspection import inspect_file


def _lung_vs_mediastinum(image: np.ndarray) -> tuple[float, float]:
    """Mean of the lateral lung bands and of the central mediastinum band at mid-height."""
    rows, cols = image.shape
    band = image[int(rows * 0.35): int(rows * 0.6)]
    lungs = np.concatenate([band[:, int(cols * 0.2): int(cols * 0.35)], band[:, int(cols * 0.65): int(cols * 0.8)]], axis=1)
    centre = band[:, int(cols * 0.45): int(cols * 0.55)]
    return float(lungs.mean()), float(centre.mean())


@pytest.mark.slow
def test_every_sample_dicom_reads(dicom_dir: Path) -> None:
    for name in SAMPLE_FILES:
        path = dicom_dir / name
        image, meta = load_cxr(path)
        assert image.dtype == np.float32 and image.ndim == 2
        assert list(image.shape) == meta["original_shape"]
        assert np.isfinite(image).all() and image.max() > image.min()
        assert meta["sop_instance_uid"] and meta["study_instance_uid"] and meta["series_instance_uid"]
        assert meta["modality"] in ("CR", "DX")
        assert meta["source_path"] == str(path.resolve())
    syntaxes = {load_cxr(dicom_dir / name)[1]["transfer_syntax"] for name in SAMPLE_FILES}
    assert {JPEG2000Lossless, JPEG2000, JPEGBaseline8Bit, JPEGLSLossless, RLELossless, ExplicitVRLittleEndian,
            ImplicitVRLittleEndian} <= syntaxes


def test_every_real_dicom_reads_with_air_dark(real_dicom_dir: Path) -> None:
    """The real files: every one reads, and MONOCHROME1 (RG1) comes out like MONOCHROME2, lungs darker than the
    mediastinum; the JPEG 2000 lossless copy decodes to the uncompressed pixels."""
    files = sorted(real_dicom_dir.glob("*.dcm"))
    assert len(files) == 6
    for path in files:
        image, meta = load_cxr(path)
        assert list(image.shape) == meta["original_shape"] and np.isfinite(image).all()
        assert meta["sop_instance_uid"] and meta["modality"] in ("CR", "DX")
        if path.name != "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm":
            lungs, centre = _lung_vs_mediastinum(image)
            assert lungs < centre, f"{path.name}: lungs {lungs:.1f} not darker than {centre:.1f}"
    np.testing.assert_array_equal(load_cxr(real_dicom_dir / "RG1_UNCR.dcm")[0], load_cxr(real_dicom_dir / "RG1_J2KR.dcm")[0])


def test_real_header_that_lies_about_polarity_is_flagged(real_dicom_dir: Path) -> None:
    """SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm: MONOCHROME2 pixels labelled MONOCHROME1 read as a negative, with a
    warning; none of the honest files gets one."""
    _, meta = load_cxr(real_dicom_dir / "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm")
    assert len(meta["warnings"]) == 1 and "negative" in meta["warnings"][0] and "MONOCHROME1" in meta["warnings"][0]
    for path in sorted(real_dicom_dir.glob("*.dcm")):
        if path.name != "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm":
            assert load_cxr(path)[1]["warnings"] == [], path.name


def test_sample_header_that_lies_about_polarity_is_flagged(dicom_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        image, meta = load_cxr(dicom_dir / JPEG_HEADER_MONO1)
    assert len(meta["warnings"]) == 1 and "MONOCHROME1" in meta["warnings"][0]
    assert JPEG_HEADER_MONO1 in caplog.text and "negative" in caplog.text
    assert polarity_logit(image) < WARN_BELOW < 0 < polarity_logit(image.max() + image.min() - image)
    for name in SAMPLE_FILES:
        if name != JPEG_HEADER_MONO1:
            image, meta = load_cxr(dicom_dir / name)
            assert meta["warnings"] == [] and polarity_logit(image) > 0, name


def _with_presentation_shape(source: Path, shape: str, folder: Path) -> Path:
    ds = pydicom.dcmread(source)
    ds.PresentationLUTShape = shape
    path = folder / f"{source.stem}_{shape}.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize(("name", "shape", "followed"), [
    (JPEG_HEADER_MONO1, "IDENTITY", True),  # MONOCHROME2 pixels labelled MONOCHROME1: the shape is right
    (JPEG_BASELINE, "INVERSE", False),  # an honest MONOCHROME2 image with a wrong shape
    (MONO1_UNCOMPRESSED, "IDENTITY", False),  # an honest MONOCHROME1 image with a wrong shape
])
def test_a_presentation_shape_that_contradicts_the_photometric_interpretation_is_settled_by_the_pixels(
        dicom_dir: Path, tmp_path: Path, name: str, shape: str, followed: bool) -> None:
    """When Photometric Interpretation and Presentation LUT Shape disagree, the reading that looks like a
    radiograph wins, with a warning naming both attributes and the one followed."""
    honest, honest_meta = load_cxr(dicom_dir / (JPEG_BASELINE if name == JPEG_HEADER_MONO1 else name))
    image, meta = load_cxr(_with_presentation_shape(dicom_dir / name, shape, tmp_path))
    np.testing.assert_allclose(image, honest)
    assert meta["inverted"] is honest_meta["inverted"]
    assert len(meta["warnings"]) == 1 and "disagree" in meta["warnings"][0] and shape in meta["warnings"][0]
    assert ("was followed" if followed else "was ignored") in meta["warnings"][0]


@pytest.mark.parametrize(("name", "shape"), [(MONO1_UNCOMPRESSED, "INVERSE"), (JPEG_BASELINE, "IDENTITY"),
                                             (JPEG_BASELINE, "LOG")])
def test_a_presentation_shape_that_agrees_changes_nothing_and_an_unknown_one_is_named(
        dicom_dir: Path, tmp_path: Path, name: str, shape: str) -> None:
    honest, _ = load_cxr(dicom_dir / name)
    image, meta = load_cxr(_with_presentation_shape(dicom_dir / name, shape, tmp_path))
    np.testing.assert_array_equal(image, honest)
    assert meta["warnings"] == ([] if shape != "LOG" else ["Presentation LUT Shape 'LOG' is neither IDENTITY nor "
                                                           "INVERSE; ignored"])


@pytest.mark.slow
def test_jpeg2000_lossless_equals_uncompressed(dicom_dir: Path) -> None:
    raw, raw_meta = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    j2k, j2k_meta = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS)
    assert raw_meta["transfer_syntax"] != j2k_meta["transfer_syntax"]
    np.testing.assert_array_equal(raw, j2k)


@pytest.mark.slow
def test_jpeg2000_lossy_is_close(dicom_dir: Path) -> None:
    raw, _ = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    lossy, _ = load_cxr(dicom_dir / MONO1_J2K_LOSSY)
    assert raw.shape == lossy.shape and not np.array_equal(raw, lossy)
    assert np.corrcoef(raw.ravel(), lossy.ravel())[0, 1] > 0.99


@pytest.mark.slow
@pytest.mark.parametrize("name", [MONO1_UNCOMPRESSED, MONO1_J2K_LOSSLESS, JPEG_BASELINE, DX_8BIT, JPEG_LS, RLE,
                                  VOI_LUT_16BIT])
def test_lungs_are_darker_than_mediastinum(dicom_dir: Path, name: str) -> None:
    """MONOCHROME1 must come out like MONOCHROME2: air dark, mediastinum bright (the phantom's anatomy)."""
    image, meta = load_cxr(dicom_dir / name)
    lungs, centre = _lung_vs_mediastinum(image)
    assert lungs < centre, f"{name} ({meta['photometric_interpretation']}): lungs {lungs:.1f} not darker than {centre:.1f}"


def test_monochrome1_header_inverts_pixels(dicom_dir: Path) -> None:
    """The same JPEG pixels labelled MONOCHROME1 read as the exact inverse of the MONOCHROME2 file."""
    mono2, _ = load_cxr(dicom_dir / JPEG_BASELINE)
    mono1, meta = load_cxr(dicom_dir / JPEG_HEADER_MONO1)
    assert meta["inverted"] is True
    np.testing.assert_allclose(mono1, mono2.max() + mono2.min() - mono2)


def test_spacing_and_meta(dicom_dir: Path) -> None:
    _, meta = load_cxr(dicom_dir / JPEG_BASELINE)
    assert meta["pixel_spacing"] == pytest.approx([JPEG_SPACING_MM] * 2, rel=1e-5)
    assert meta["pixel_spacing_source"] == "PixelSpacing"
    assert meta["transfer_syntax"] == "1.2.840.10008.1.2.4.50"
    assert meta["view_position"] == "PA" and meta["body_part"] == "CHEST"
    _, mono1 = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    assert mono1["pixel_spacing"] is None, "a spacing of 0 mm is unknown, not zero"


def test_voi_window_applied(dicom_dir: Path) -> None:
    """The MONOCHROME1 sample has a window (centre 15000, width 30000): the output is the windowed, inverted value."""
    ds = pydicom.dcmread(dicom_dir / MONO1_UNCOMPRESSED)
    image, meta = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    assert meta["voi_applied"]
    stored = ds.pixel_array.astype(np.float64)
    # linear window (DICOM C.11.2.1.2.1): y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin, monotonic
    order = np.argsort(stored.ravel()[:5000])
    windowed = -image.ravel()[:5000]  # inverted, so decreasing in stored value
    assert np.all(np.diff(windowed[order]) >= -1e-3)


def test_voi_lut_sequence_applied_to_16_bit_values(dicom_dir: Path) -> None:
    """The 16-bit sample's VOI LUT Sequence (a square-root curve) is applied to the stored values."""
    ds = pydicom.dcmread(dicom_dir / VOI_LUT_16BIT)
    image, meta = load_cxr(dicom_dir / VOI_LUT_16BIT)
    assert meta["voi_applied"] and meta["bits_stored"] == 16
    expected = np.round(np.sqrt(ds.pixel_array.astype(np.float64) / 65535.0) * 65535)
    np.testing.assert_array_equal(image, expected.astype(np.float32))


def test_bits_stored_masks_unused_high_bits(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    pixels = ds.pixel_array.astype(np.uint16)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 8, 7
    garbage = (pixels | 0xAB00).astype(np.uint16)  # junk in the unused high bits
    ds.PixelData = garbage.tobytes()
    path = tmp_path / "highbits.dcm"
    ds.save_as(path)
    image, _ = load_cxr(path)
    np.testing.assert_array_equal(image, pixels.astype(np.float32))


def test_pixel_padding_replaced_by_darkest_value(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    pixels = ds.pixel_array.copy()
    pixels[:, :40] = 255  # a bright padded border
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x00280120, "US", 255)  # Pixel Padding Value
    path = tmp_path / "padded.dcm"
    ds.save_as(path)
    image, meta = load_cxr(path)
    assert meta["padding_pixels"] >= 40 * pixels.shape[0]
    assert image[:, :40].max() == image.min()


def _sample_image_files(dicom_dir: Path, folder: Path) -> tuple[Path, Path]:
    """The 8-bit sample's pixels as an RGB PNG (as NIH ChestX-ray14 ships) and as a grey JPEG."""
    grey = pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array
    rgb, jpg = folder / "rgb.png", folder / "grey.jpg"
    Image.fromarray(grey).convert("RGB").save(rgb)
    Image.fromarray(grey).save(jpg, quality=90)
    return rgb, jpg


def test_image_files_read_grey(dicom_dir: Path, tmp_path: Path) -> None:
    rgb, jpg = _sample_image_files(dicom_dir, tmp_path)
    image, meta = load_cxr(rgb)
    assert image.shape == SAMPLE_SHAPE and meta["format"] == "png"
    np.testing.assert_allclose(image, pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array, atol=1e-3)  # RGB -> grey
    image, meta = load_cxr(jpg)
    assert image.shape == SAMPLE_SHAPE and meta["format"] == "jpeg"
    rgba = tmp_path / "rgba.png"
    Image.open(rgb).convert("RGBA").save(rgba)
    grey, _ = load_cxr(rgba)
    np.testing.assert_allclose(grey, load_cxr(rgb)[0], atol=0.01)
    tiff = tmp_path / "image.tif"
    Image.fromarray(np.asarray(Image.open(jpg))).save(tiff)
    np.testing.assert_array_equal(load_cxr(tiff)[0], load_cxr(jpg)[0])
    png16 = tmp_path / "sixteen.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 9).save(png16)
    assert load_cxr(png16)[0].max() == (64 * 64 - 1) * 9


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_formats_read(dicom_dir: Path, tmp_path: Path, suffix: str) -> None:
    import SimpleITK as sitk

    reference, _ = load_cxr(dicom_dir / DX_8BIT)
    image = sitk.GetImageFromArray(reference)
    image.SetSpacing((0.2, 0.3))
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(image, str(path))
    loaded, meta = load_cxr(path)
    np.testing.assert_array_equal(loaded, reference)
    assert meta["pixel_spacing"] == pytest.approx([0.3, 0.2])


def _nrrd_header(sizes: tuple[int, int], data_file: str) -> str:
    return (f"NRRD0004\ntype: uint8\ndimension: 2\nsizes: {sizes[1]} {sizes[0]}\nencoding: raw\n"
            f"data file: {data_file}\n\n")


def test_a_detached_header_reads_its_data_file_next_to_it_and_nothing_outside(dicom_dir: Path, tmp_path: Path) -> None:
    """A ``.nhdr`` / ``.mhd`` names the file that holds its pixels: one beside the header is read, one elsewhere (an
    absolute path, ``..``) or a list of files is refused before anything is opened."""
    reference, _ = load_cxr(dicom_dir / DX_8BIT)
    pixels = reference.astype(np.uint8)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "image.raw").write_bytes(pixels.tobytes())
    beside = tmp_path / "beside.nhdr"
    beside.write_text(_nrrd_header(pixels.shape, "data/image.raw"))
    np.testing.assert_array_equal(load_cxr(beside)[0], pixels)

    elsewhere = tmp_path / "headers"
    elsewhere.mkdir()
    outside = tmp_path / "outside.raw"
    outside.write_bytes(pixels.tobytes())
    refused = {"absolute.nhdr": _nrrd_header(pixels.shape, str(outside)),
               "parent.nhdr": _nrrd_header(pixels.shape, "../outside.raw"),
               "absolute.mhd": (f"ObjectType = Image\nNDims = 2\nDimSize = {pixels.shape[1]} {pixels.shape[0]}\n"
                                f"ElementType = MET_UCHAR\nElementDataFile = {outside}\n")}
    for name, header in refused.items():
        (elsewhere / name).write_text(header)
        with pytest.raises(errors.UnsupportedImageError, match=f"{name}: the header reads its pixel data from .*"
                                                               "outside the header's folder"):
            load_cxr(elsewhere / name)
    series = tmp_path / "series.nhdr"
    series.write_text(_nrrd_header(pixels.shape, "slice%03d.raw 1 10 1"))
    with pytest.raises(errors.MultiFrameError, match="several files"):
        load_cxr(series)


def test_a_2d_image_along_other_axes_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """A NIfTI of a (1, rows, cols) array holds one image, but along its second and third axes; the message said
    only 'a volume'. A true volume keeps the plain message."""
    import nibabel as nib

    pixels = np.random.default_rng(0).integers(0, 255, (1, 48, 40)).astype(np.uint8)
    nib.save(nib.Nifti1Image(pixels, np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(errors.MultiFrameError, match=r"flat\.nii\.gz: a volume of size \(1, 48, 40\).*columns and rows "
                                                     "as the first two"):
        load_cxr(tmp_path / "flat.nii.gz")
    nib.save(nib.Nifti1Image(np.repeat(pixels, 3, axis=0), np.eye(4)), tmp_path / "cube.nii.gz")
    with pytest.raises(errors.MultiFrameError, match=r"one 2D radiograph is expected$"):
        load_cxr(tmp_path / "cube.nii.gz")


@pytest.mark.parametrize("case", ["float32_extremes", "float64_beyond_float32", "complex"])
def test_pixel_values_the_normalization_cannot_use_are_refused(tmp_path: Path, case: str) -> None:
    """Values spanning more than float32 holds overflowed the normalization and gave a NaN score reported as a result;
    float64 values beyond float32 and complex values were cast with a warning. Each is now refused by name."""
    import SimpleITK as sitk

    stripes = np.indices((64, 64)).sum(axis=0) % 2 == 0
    arrays = {"float32_extremes": np.where(stripes, 3e38, -3e38).astype(np.float32),
              "float64_beyond_float32": np.where(stripes, 1e300, 0.0),
              "complex": (stripes + 1j * stripes).astype(np.complex64)}
    expected = {"float32_extremes": (errors.CorruptFileError, "span -3e\\+38 to 3e\\+38, wider than 32-bit"),
                "float64_beyond_float32": (errors.CorruptFileError, "not finite once read as 32-bit floats"),
                "complex": (errors.UnsupportedImageError, "complex pixel values")}
    path = tmp_path / f"{case}.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(arrays[case]), str(path))
    error, words = expected[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=f"{path.name}: .*{words}"):
            load_cxr(path)


# --- broken files: each one gets its own error class and a message naming the file ---------------

def _save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _broken_files(dicom_dir: Path, folder: Path) -> dict[str, tuple[Path, type[errors.PilletGANError], str]]:
    """Broken inputs made from the sample files: name -> (path, expected error, expected words)."""
    cases: dict[str, tuple[Path, type[errors.PilletGANError], str]] = {}
    source = dicom_dir / DX_8BIT

    text = folder / "notes.txt"
    text.write_text("this is not an image\n" * 20)
    cases["not_image"] = (text, errors.UnrecognizedFormatError, "not a DICOM file")

    ds = pydicom.dcmread(source)
    del ds.PixelData
    cases["no_pixels"] = (_save(ds, folder / "no_pixels.dcm"), errors.MissingPixelDataError, "no Pixel Data")

    ds = pydicom.dcmread(source)
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    del ds.PixelData
    cases["sr"] = (_save(ds, folder / "report.dcm"), errors.NotAnImageError, "SR")

    ds = pydicom.dcmread(source)
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.11.1")  # Grayscale Softcopy Presentation State
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    cases["presentation_state"] = (_save(ds, folder / "gsps.dcm"), errors.NotAnImageError, "Presentation State")

    ds = pydicom.dcmread(source)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    cases["multi_frame"] = (_save(ds, folder / "multiframe.dcm"), errors.MultiFrameError, "multi-frame")

    ds = pydicom.dcmread(source)
    grey = ds.pixel_array
    ds.PixelData = np.stack([grey, grey, grey], axis=-1).tobytes()
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    cases["colour"] = (_save(ds, folder / "colour.dcm"), errors.ColourImageError, "colour image")

    ds = pydicom.dcmread(source)
    ds.SamplesPerPixel = 3  # found by fuzzing: a greyscale interpretation with three samples
    cases["grey_three_samples"] = (_save(ds, folder / "grey3.dcm"), errors.CorruptFileError, "3 samples per pixel")

    ds = pydicom.dcmread(source)
    ds.NumberOfFrames = -1  # found by fuzzing
    cases["frames_negative"] = (_save(ds, folder / "frames.dcm"), errors.CorruptFileError, "NumberOfFrames is -1")

    ds = pydicom.dcmread(source)
    ds.PixelRepresentation = 65535  # found by fuzzing: neither unsigned (0) nor signed (1)
    cases["pixel_representation"] = (_save(ds, folder / "representation.dcm"), errors.CorruptFileError,
                                     "PixelRepresentation is 65535")

    raw = source.read_bytes()
    truncated = folder / "truncated.dcm"
    truncated.write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (truncated, errors.TruncatedFileError, "truncated")

    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 Main Profile
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    cases["syntax"] = (_save(ds, folder / "mpeg2.dcm"), errors.UnsupportedTransferSyntaxError, "MPEG2")

    ds = pydicom.dcmread(source)
    ds.Rows, ds.Columns = 60000, 60000
    cases["absurd"] = (_save(ds, folder / "huge.dcm"), errors.ImplausibleDimensionsError, "60000 x 60000")

    png = folder / "cut.png"
    png.write_bytes(_sample_image_files(dicom_dir, folder)[0].read_bytes()[:5000])
    (folder / "rgb.png").unlink()
    (folder / "grey.jpg").unlink()
    cases["truncated_png"] = (png, errors.TruncatedFileError, "truncated")

    empty = folder / "empty.dcm"
    empty.write_bytes(b"")
    cases["empty"] = (empty, errors.EmptyFileError, "empty")

    pipe = folder / "pipe.dcm"
    os.mkfifo(pipe)
    cases["fifo"] = (pipe, errors.NotARegularFileError, "FIFO")

    # found by fuzzing: Pillow raises TypeError for a TIFF page without its width, zlib its own error type
    tiff = folder / "no_width.tif"
    page = Image.fromarray(pydicom.dcmread(source).pixel_array)
    page.save(tiff, save_all=True, append_images=[page])
    data = bytearray(tiff.read_bytes())  # little-endian TIFF: header, then linked IFDs of 12-byte entries
    first = int.from_bytes(data[4:8], "little")
    second = int.from_bytes(data[first + 2 + 12 * int.from_bytes(data[first:first + 2], "little"):][:4], "little")
    entries = [second + 2 + 12 * i for i in range(int.from_bytes(data[second:second + 2], "little"))]
    width = next(e for e in entries if data[e:e + 2] == b"\x00\x01")  # ImageWidth (tag 256)
    data[width:width + 2] = b"\xff\xc0"  # -> an unknown private tag
    tiff.write_bytes(bytes(data))
    cases["tiff_page_without_width"] = (tiff, errors.CorruptFileError, "TIFF data cannot be decoded")
    nifti = folder / "damaged.nii.gz"
    stream = bytearray(gzip.compress(bytes(352) + bytes(range(256)) * 64))
    stream[20:40] = b"\xff" * 20
    nifti.write_bytes(bytes(stream))
    cases["damaged_gzip"] = (nifti, errors.CorruptFileError, "gzip stream is damaged")
    cut = folder / "cut.nii.gz"
    cut.write_bytes(gzip.compress(bytes(352) + bytes(range(256)) * 64)[:30])
    cases["truncated_gzip"] = (cut, errors.TruncatedFileError, "gzip stream ends early")
    return cases


def test_each_broken_file_has_its_own_error(dicom_dir: Path, tmp_path: Path) -> None:
    cases = _broken_files(dicom_dir, tmp_path)
    messages = set()
    for name, (path, expected, words) in cases.items():
        with pytest.raises(expected) as caught:
            load_cxr(path)
        message = str(caught.value)
        assert str(path) in message, f"{name}: message does not name the file: {message}"
        assert words.lower() in message.lower(), f"{name}: '{words}' not in: {message}"
        messages.add(caught.value.reason)
    assert len(messages) == len(cases), "every broken case must have its own message"


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(errors.FileNotFoundInputError, match="no such file"):
        load_cxr(tmp_path / "absent.dcm")


def test_absurd_dimensions_refused_before_decoding(dicom_dir: Path, tmp_path: Path) -> None:
    """The header check happens first: the file's tiny pixel data is never decoded."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.Rows, ds.Columns = 50000, 50000
    ds.PixelData = b"\x00" * 16
    path = _save(ds, tmp_path / "bomb.dcm")
    with pytest.raises(errors.ImplausibleDimensionsError, match="refusing to allocate"):
        load_cxr(path)


def _with_element(ds: pydicom.Dataset, tag: int, vr: str, value: object) -> pydicom.Dataset:
    ds[tag] = pydicom.DataElement(tag, vr, value)
    return ds


def _lut_item(descriptor: list[int], data: list[int] | bytes) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor
    item.add_new(0x00283006, "OW" if isinstance(data, bytes) else "US", data)  # LUT Data
    return item


#: Header values a damaged or hand-edited export carries (found by mutation fuzzing of the real samples), each with
#: words the reader's error must contain: name -> (change to the 8-bit sample, words).
MALFORMED_HEADERS = {
    "rows_text": (lambda ds: _with_element(ds, 0x00280010, "LO", "x" * 70), "Rows is 'xxx"),
    "rows_overflowing": (lambda ds: _with_element(ds, 0x00280010, "LO", "1e309"), "Rows is '1e309'"),
    "columns_several": (lambda ds: _with_element(ds, 0x00280011, "IS", ["1", "2", "3"]), "Columns is ['1', '2', '3']"),
    "bits_allocated_empty": (lambda ds: _with_element(ds, 0x00280100, "US", None), "lacks BitsAllocated"),
    "bits_allocated_bytes": (lambda ds: _with_element(ds, 0x00280100, "OB", b"\x00\x80"), "BitsAllocated is b'"),
    "frames_infinite": (lambda ds: _with_element(ds, 0x00280008, "LO", "inf"), "NumberOfFrames is 'inf'"),
    "samples_nan": (lambda ds: _with_element(ds, 0x00280002, "LO", "NaN"), "SamplesPerPixel is 'NaN'"),
    "bits_stored_fraction": (lambda ds: _with_element(ds, 0x00280101, "DS", "7.5"), "BitsStored is '7.5'"),
    "sop_class_several": (lambda ds: _with_element(ds, 0x00080016, "UI", ["1.2", "1.3"]), "several values"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_HEADERS))
def test_malformed_header_values_are_refused_by_name(dicom_dir: Path, tmp_path: Path, case: str) -> None:
    """A header value the pixels cannot be read by (text, several values, raw bytes, a fraction) is a corrupt
    file named with the attribute and its value, never a Python error from deep inside the reader."""
    change, words = MALFORMED_HEADERS[case]
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # each value is read back with the VR it was written as
    path = tmp_path / f"{case}.dcm"
    change(ds).save_as(path, enforce_file_format=False)
    with pytest.raises(errors.CorruptFileError) as caught:
        load_cxr(path)
    assert str(path) in str(caught.value) and words in str(caught.value), str(caught.value)


def test_bits_stored_above_bits_allocated_is_refused_from_the_header(dicom_dir: Path, tmp_path: Path) -> None:
    """Found by a hostile round: it reached the decoder and was reported as damaged pixel data at inference."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BitsStored = 20
    path = tmp_path / "bits_stored_20.dcm"
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(errors.CorruptFileError, match="BitsStored 20 exceeds its BitsAllocated 8"):
        check_radiograph_header(read_dicom_header(path), path)


def _with_unknown_vr(ds: pydicom.Dataset, tag: int, path: Path) -> Path:
    """``ds`` written in Explicit VR Little Endian with the VR bytes of ``tag`` replaced by an unknown VR."""
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=False)
    data = path.read_bytes()
    entry = tag.to_bytes(4, "big")
    entry = entry[1::-1] + entry[3:1:-1]  # (group, element) as two little-endian shorts
    at = data.index(entry, 132)
    path.write_bytes(data[:at + 4] + b"\x43\xb2" + data[at + 6:])
    return path


def test_a_damaged_descriptive_attribute_is_left_out_and_a_damaged_photometric_refused(dicom_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """An element pydicom cannot parse (a VR that does not exist, found by fuzzing) in an attribute the reader only
    reports is reported as absent; in one the pixels depend on, it refuses the file by name."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.BodyPartExamined = "CHEST"
    plain, _ = load_cxr(dicom_dir / DX_8BIT)
    image, meta = load_cxr(_with_unknown_vr(ds, 0x00180015, tmp_path / "body_part.dcm"))
    np.testing.assert_array_equal(image, plain)
    assert meta["body_part"] is None and meta["modality"] == ds.Modality
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    with pytest.raises(errors.CorruptFileError, match="PhotometricInterpretation cannot be parsed"):
        load_cxr(_with_unknown_vr(ds, 0x00280004, tmp_path / "photometric.dcm"))


#: Windows and VOI LUTs pydicom cannot apply: name -> attributes set on the 8-bit sample (which has neither).
BROKEN_WINDOWS = {
    "width_zero": {"WindowCenter": 100, "WindowWidth": 0},
    "width_negative": {"WindowCenter": 100, "WindowWidth": -50},
    "lut_zero_bits": {"VOILUTSequence": [_lut_item([2, 0, 0], [1, 2])]},
    "function_several": {"WindowCenter": 100, "WindowWidth": 100, "VOILUTFunction": ["LINEAR", "SIGMOID"]},
    # a LUT Descriptor announcing 4096 entries over 256: pydicom's struct.error ended `pilletgan infer`
    "lut_longer_than_its_data": {"VOILUTSequence": [_lut_item([4096, 0, 16], np.arange(256, dtype="<u2").tobytes())]},
    # a window of 1e308 made every pixel one value: the image was refused as having no contrast
    "window_huge": {"WindowCenter": "1e308", "WindowWidth": "1e308"},
}


@pytest.mark.parametrize("case", sorted(BROKEN_WINDOWS))
def test_a_window_that_cannot_be_applied_is_left_out_with_a_warning(dicom_dir: Path, tmp_path: Path,
                                                                   case: str) -> None:
    """A window is a display setting and the preprocessing windows each image by its own percentiles: the image
    is read without it (the values the header's rescale gives), and the result says so."""
    plain, _ = load_cxr(dicom_dir / DX_8BIT)
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword, value in BROKEN_WINDOWS[case].items():
        setattr(ds, keyword, value)
    path = tmp_path / f"{case}.dcm"
    ds.save_as(path, enforce_file_format=False)
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert meta["voi_applied"] is False
    assert any(("VOI LUT" in w or "VOILUTFunction" in w) and "analysed without it" in w for w in meta["warnings"])


def test_a_voi_lut_sequence_that_cannot_be_parsed_is_left_out_with_a_warning(dicom_dir: Path, tmp_path: Path) -> None:
    """A VOI LUT Sequence whose items pydicom cannot parse (found by fuzzing: an OSError from inside pydicom) is a
    window that cannot be applied, not a reason to lose the image."""
    plain, _ = load_cxr(dicom_dir / DX_8BIT)
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.WindowCenter, ds.WindowWidth = 100, 100
    ds[0x00283010] = pydicom.DataElement(0x00283010, "OB", b"\x01\x02\x03\x04")
    path = tmp_path / "voi_sequence.dcm"
    ds.save_as(path, enforce_file_format=False)
    data = path.read_bytes()
    at = data.index(b"\x28\x00\x10\x30OB")
    path.write_bytes(data[:at + 4] + b"SQ" + data[at + 6:])  # the same bytes, now claimed to be sequence items
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert meta["voi_applied"] is False
    assert any("VOI LUT or window cannot be applied" in w for w in meta["warnings"])


@pytest.mark.parametrize(("name", "keyword", "read_as"), [
    (DX_8BIT, "PhotometricInterpretation", "MONOCHROME2"), ("j2k", "PhotometricInterpretation", "MONOCHROME2"),
    (DX_8BIT, "BitsStored", "8"), (DX_8BIT, "PixelRepresentation", "0"), (DX_8BIT, "SamplesPerPixel", "1"),
    (DX_8BIT, "BitsStored:empty", "8")])
def test_an_absent_required_pixel_attribute_is_read_as_the_header_checks_assume(dicom_dir: Path, tmp_path: Path,
                                                                                name: str, keyword: str,
                                                                                read_as: str) -> None:
    """Required attributes some exports drop or leave empty (found by fuzzing): the header checks and discovery read
    them with a default; the decoders need them, so the reader supplies that default on every decoder and says so
    in the warnings; the file is untouched."""
    source = dicom_dir / DX_8BIT
    ds = pydicom.dcmread(source)
    if name == "j2k":
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        source = tmp_path / "j2k.dcm"
        ds.save_as(source, enforce_file_format=False)
    plain, _ = load_cxr(source)
    keyword, _, how = keyword.partition(":")
    if how == "empty":
        ds[keyword].value = None
    else:
        delattr(ds, keyword)
    path = tmp_path / "absent.dcm"
    ds.save_as(path, enforce_file_format=False)
    before = path.read_bytes()
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert meta["inverted"] is False
    assert f"the header has no {keyword} (a required attribute); read as {read_as}" in meta["warnings"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", [DX_8BIT, JPEG_BASELINE])
def test_an_extended_offset_table_without_lengths_is_ignored(dicom_dir: Path, tmp_path: Path, name: str) -> None:
    """Found by fuzzing: pydicom's decoders fail on an Extended Offset Table without its lengths (a native or a
    JPEG file alike); the one frame is found without it, so the reader drops it from memory and says so."""
    plain, _ = load_cxr(dicom_dir / name)
    ds = pydicom.dcmread(dicom_dir / name)
    ds.ExtendedOffsetTable = b"\0" * 8
    path = tmp_path / "offset_table.dcm"
    ds.save_as(path, enforce_file_format=False)
    before = path.read_bytes()
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert any("Extended Offset Table without its lengths; ignored" in w for w in meta["warnings"])
    assert path.read_bytes() == before


@pytest.mark.parametrize("case", ["zeros", "rescale_slope_zero", "one_bright_pixel"])
def test_an_image_without_contrast_is_not_analysed(dicom_dir: Path, tmp_path: Path, case: str) -> None:
    """A blank frame (or one where 99 % of the pixels share a value) would be normalised by a division by zero and
    still get a score and boxes: it is refused as holding no radiograph."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    pixels = np.zeros_like(ds.pixel_array)
    if case == "one_bright_pixel":
        pixels[5, 5] = 255
    if case == "rescale_slope_zero":
        ds.RescaleSlope, ds.RescaleIntercept = 0, 5
    else:
        ds.PixelData = pixels.tobytes()
    path = _save(ds, tmp_path / f"{case}.dcm")
    # a rescale that flattens stored pixels with contrast is named as the cause
    expected = r"rescale \(slope 0, intercept 5\) maps at least 99 %" if case == "rescale_slope_zero" else "no contrast"
    with pytest.raises(errors.NotAnImageError, match=expected):
        load_cxr(path)
    png = tmp_path / f"{case}.png"
    Image.fromarray(pixels).save(png)
    with pytest.raises(errors.NotAnImageError, match=f"{png.name}: the image has no contrast"):
        load_cxr(png)


def test_an_icon_sized_image_is_refused(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.Rows, ds.Columns = 2, ds.Columns
    ds.PixelData = ds.PixelData[: 2 * ds.Columns]
    with pytest.raises(errors.ImplausibleDimensionsError, match="2 x 256 pixels, fewer than the 32 a side"):
        load_cxr(_save(ds, tmp_path / "thin.dcm"))


def test_dicom_without_preamble_reads(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    bare = FileDataset(str(tmp_path / "bare"), ds, file_meta=meta, preamble=None)
    bare.SOPInstanceUID = generate_uid()
    path = tmp_path / "bare_no_extension"
    bare.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    image, meta_out = load_cxr(path)
    assert image.shape == SAMPLE_SHAPE and meta_out["sop_instance_uid"] == bare.SOPInstanceUID


@pytest.mark.parametrize("implicit", [True, False])
def test_dataset_without_file_meta_reads_as_pydicom_reads_it(dicom_dir: Path, tmp_path: Path, implicit: bool) -> None:
    """No preamble and no File Meta Information at all: the transfer syntax is the encoding pydicom found."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.preamble, ds.file_meta = None, FileMetaDataset()
    path = tmp_path / "bare_dataset"
    pydicom.dcmwrite(path, ds, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[:4] == b"\x08\x00\x16\x00"  # the first element is (0008,0016) SOP Class UID
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, load_cxr(dicom_dir / DX_8BIT)[0])
    assert meta["transfer_syntax"] == (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)

    compressed = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    compressed.preamble, compressed.file_meta = None, FileMetaDataset()
    pydicom.dcmwrite(path, compressed, implicit_vr=False, little_endian=True, enforce_file_format=False)
    with pytest.raises(errors.UnsupportedTransferSyntaxError, match="no File Meta Information"):
        load_cxr(path)


@pytest.mark.slow
def test_inspect_reports_every_file_and_exits_1(dicom_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in dicom_dir.glob("*.dcm"):
        shutil.copy(path, folder / path.name)
    cases = _broken_files(dicom_dir, folder)
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "inspect", str(folder), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    records = json.loads(result.stdout)
    by_name = {Path(r["path"]).name: r for r in records}
    assert len(records) == len(SAMPLE_FILES) + len(cases)
    for name in SAMPLE_FILES:
        assert by_name[name]["status"] == "ok"
        assert by_name[name]["width"] == by_name[name]["columns"] > 0
    for path, expected, _ in cases.values():
        assert by_name[path.name]["status"] == "error"
        assert by_name[path.name]["error"] == expected.__name__ and by_name[path.name]["kind"] == expected.kind
    text = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "inspect", str(dicom_dir)],
                          capture_output=True, text=True, timeout=300)
    assert text.returncode == 0
    assert sum(line.startswith("ok ") for line in text.stdout.splitlines()) == len(SAMPLE_FILES)
    assert "MONOCHROME1" in text.stdout
    mono1 = next(line for line in text.stdout.splitlines() if MONO1_UNCOMPRESSED in line)
    assert f"{MONO1_SHAPE[1]}x{MONO1_SHAPE[0]} px (width x height)" in mono1
    lying = text.stdout.split(JPEG_HEADER_MONO1, 1)[1].splitlines()[1]
    assert lying.strip().startswith("warning:") and "negative" in lying


def test_inspect_file_never_raises(tmp_path: Path) -> None:
    record = inspect_file(tmp_path / "nothing.dcm")
    assert record["status"] == "error" and record["error"] == "FileNotFoundInputError" and record["kind"] == "missing"


def test_a_modality_lut_longer_than_its_data_is_a_named_error(dicom_dir: Path, tmp_path: Path) -> None:
    """pydicom's struct.error escaped as an internal error (`pilletgan infer` ended with a traceback)."""
    path = write_variant(dicom_dir, tmp_path / "modality.dcm", ModalityLUTSequence=[_lut_item([256, 0, 16], bytes(20))])
    with pytest.raises(errors.CorruptFileError, match="Modality LUT announces 256 entries in its LUT Descriptor, "
                                                      "its LUT Data holds 10"):
        load_cxr(path)


@pytest.mark.parametrize("spacing", [["1e308", "1e308"], ["1e-300", "1e-300"], ["2000", "2000"]])
def test_a_pixel_spacing_no_detector_has_is_unknown(dicom_dir: Path, tmp_path: Path, spacing: list[str]) -> None:
    """1e308 and 1e-300 mm went on to the outputs, where ITK refused the grid with a traceback."""
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "spacing.dcm", PixelSpacing=spacing))
    assert meta["pixel_spacing"] is None and image.shape == SAMPLE_SHAPE


def test_an_empty_photometric_interpretation_reads_as_monochrome2_and_an_undefined_one_is_named(
        dicom_dir: Path, tmp_path: Path) -> None:
    plain, _ = load_cxr(dicom_dir / DX_8BIT)
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "empty.dcm", PhotometricInterpretation=""))
    np.testing.assert_array_equal(image, plain)
    assert any("PhotometricInterpretation" in w for w in meta["warnings"])
    with pytest.raises(errors.CorruptFileError, match="'MONOCHROME3' is no defined term"):
        load_cxr(write_variant(dicom_dir, tmp_path / "mono3.dcm", PhotometricInterpretation="MONOCHROME3"))


def test_a_deflated_radiograph_reads_and_a_deflate_bomb_is_refused_before_it_inflates(
        dicom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid Deflated Explicit VR Little Endian file was refused as truncated (its offsets were compared with the
    compressed size); a 4.8 MB file inflating to 4 GiB took 8.9 GB of memory before it was refused."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from PilletGANLib.dicom import reader

    plain, _ = load_cxr(dicom_dir / DX_8BIT)
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < plain.size  # compressed
    image, meta = load_cxr(path)
    np.testing.assert_array_equal(image, plain)
    assert meta["transfer_syntax"] == DeflatedExplicitVRLittleEndian
    monkeypatch.setattr(reader, "_MAX_INFLATED_BYTES", plain.size // 2)  # as a bomb is to the real limit
    with pytest.raises(errors.CorruptFileError, match=r"inflates to more than .* deflate bomb"):
        load_cxr(path)


def test_an_enhanced_multi_frame_sop_class_is_refused_from_its_header(dicom_dir: Path, tmp_path: Path) -> None:
    """A DX image filed as Enhanced XA was analysed and then failed at the SEG (highdicom asked for its frames)."""
    path = write_variant(dicom_dir, tmp_path / "xa.dcm", SOPClassUID="1.2.840.10008.5.1.4.1.1.12.1.1")
    with pytest.raises(errors.MultiFrameError, match="'Enhanced XA Image Storage' object"):
        load_cxr(path)


@pytest.mark.parametrize("name", [MONO1_J2K_LOSSLESS, MONO1_UNCOMPRESSED])
def test_junk_appended_after_the_pixel_data_is_ignored_with_a_warning(dicom_dir: Path, tmp_path: Path, caplog,
                                                                      name: str) -> None:
    """100 bytes after a whole file parse as an element that runs past its end: the image is intact and read."""
    expected, _ = load_cxr(dicom_dir / name)
    path = tmp_path / name
    path.write_bytes((dicom_dir / name).read_bytes() + bytes(range(1, 101)))
    with caplog.at_level(logging.WARNING, logger="PilletGANLib.dicom.reader"):
        image, _ = load_cxr(path)
    np.testing.assert_array_equal(image, expected)
    assert "after the Pixel Data do not parse as DICOM elements" in caplog.text
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes((dicom_dir / name).read_bytes()[:-100])  # the image itself cut short is still refused
    with pytest.raises(errors.TruncatedFileError):
        load_cxr(truncated)
