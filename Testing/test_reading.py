"""Reading real chest radiographs and refusing broken files with their own messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from PilletGANLib import errors, load_cxr
from PilletGANLib.inspection import inspect_file


def _lung_vs_mediastinum(image: np.ndarray) -> tuple[float, float]:
    """Mean of the lateral lung bands and of the central mediastinum band at mid-height."""
    rows, cols = image.shape
    band = image[int(rows * 0.35): int(rows * 0.6)]
    lungs = np.concatenate([band[:, int(cols * 0.2): int(cols * 0.35)], band[:, int(cols * 0.65): int(cols * 0.8)]], axis=1)
    centre = band[:, int(cols * 0.45): int(cols * 0.55)]
    return float(lungs.mean()), float(centre.mean())


@pytest.mark.slow
def test_every_real_dicom_reads(dicom_dir: Path) -> None:
    files = sorted(dicom_dir.glob("*.dcm"))
    assert len(files) == 6
    for path in files:
        image, meta = load_cxr(path)
        assert image.dtype == np.float32 and image.ndim == 2
        assert list(image.shape) == meta["original_shape"]
        assert np.isfinite(image).all() and image.max() > image.min()
        assert meta["sop_instance_uid"] and meta["study_instance_uid"] and meta["series_instance_uid"]
        assert meta["modality"] in ("CR", "DX")
        assert meta["source_path"] == str(path.resolve())


@pytest.mark.slow
def test_jpeg2000_lossless_equals_uncompressed(dicom_dir: Path) -> None:
    raw, raw_meta = load_cxr(dicom_dir / "RG1_UNCR.dcm")
    j2k, j2k_meta = load_cxr(dicom_dir / "RG1_J2KR.dcm")
    assert raw_meta["transfer_syntax"] != j2k_meta["transfer_syntax"]
    np.testing.assert_array_equal(raw, j2k)


@pytest.mark.slow
def test_jpeg2000_lossy_is_close(dicom_dir: Path) -> None:
    raw, _ = load_cxr(dicom_dir / "RG1_UNCR.dcm")
    lossy, _ = load_cxr(dicom_dir / "RG1_J2KI.dcm")
    assert raw.shape == lossy.shape
    assert np.corrcoef(raw.ravel(), lossy.ravel())[0, 1] > 0.999


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "SIIM_CR_JPEG_BASELINE.dcm", "NIH_DX_UNCOMPRESSED.dcm"])
def test_lungs_are_darker_than_mediastinum(dicom_dir: Path, name: str) -> None:
    """MONOCHROME1 (RG1) must come out like MONOCHROME2: air dark, mediastinum bright."""
    image, meta = load_cxr(dicom_dir / name)
    lungs, centre = _lung_vs_mediastinum(image)
    assert lungs < centre, f"{name} ({meta['photometric_interpretation']}): lungs {lungs:.1f} not darker than {centre:.1f}"


def test_monochrome1_header_inverts_pixels(dicom_dir: Path) -> None:
    """The same JPEG pixels labelled MONOCHROME1 read as the exact inverse of the MONOCHROME2 file."""
    mono2, _ = load_cxr(dicom_dir / "SIIM_CR_JPEG_BASELINE.dcm")
    mono1, meta = load_cxr(dicom_dir / "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm")
    assert meta["inverted"] is True
    np.testing.assert_allclose(mono1, mono2.max() + mono2.min() - mono2)


def test_spacing_and_meta(dicom_dir: Path) -> None:
    _, meta = load_cxr(dicom_dir / "SIIM_CR_JPEG_BASELINE.dcm")
    assert meta["pixel_spacing"] == pytest.approx([0.168, 0.168])
    assert meta["pixel_spacing_source"] == "PixelSpacing"
    assert meta["transfer_syntax"] == "1.2.840.10008.1.2.4.50"
    assert meta["view_position"] == "PA" and meta["body_part"] == "CHEST"
    _, rg1 = load_cxr(dicom_dir / "RG1_UNCR.dcm")
    assert rg1["pixel_spacing"] is None, "a spacing of 0 mm is unknown, not zero"


def test_voi_window_applied(dicom_dir: Path) -> None:
    """RG1 has a window (centre 15000, width 30000): the output is the windowed, inverted stored value."""
    ds = pydicom.dcmread(dicom_dir / "RG1_UNCR.dcm")
    image, meta = load_cxr(dicom_dir / "RG1_UNCR.dcm")
    assert meta["voi_applied"]
    stored = ds.pixel_array.astype(np.float64)
    # linear window (DICOM C.11.2.1.2.1): y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin, monotonic
    order = np.argsort(stored.ravel()[:5000])
    windowed = -image.ravel()[:5000]  # inverted, so decreasing in stored value
    assert np.all(np.diff(windowed[order]) >= -1e-3)


def test_bits_stored_masks_unused_high_bits(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    pixels = ds.pixel_array.astype(np.uint16)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 8, 7
    garbage = (pixels | 0xAB00).astype(np.uint16)  # junk in the unused high bits
    ds.PixelData = garbage.tobytes()
    path = tmp_path / "highbits.dcm"
    ds.save_as(path)
    image, _ = load_cxr(path)
    np.testing.assert_array_equal(image, pixels.astype(np.float32))


def test_pixel_padding_replaced_by_darkest_value(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    pixels = ds.pixel_array.copy()
    pixels[:, :40] = 255  # a bright padded border
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x00280120, "US", 255)  # Pixel Padding Value
    path = tmp_path / "padded.dcm"
    ds.save_as(path)
    image, meta = load_cxr(path)
    assert meta["padding_pixels"] >= 40 * 1024
    assert image[:, :40].max() == image.min()


def test_image_files_read_grey(shared_data: Path, tmp_path: Path) -> None:
    rgb = next((shared_data / "nih1000_64px" / "train" / "0_normal").glob("*.png"))
    image, meta = load_cxr(rgb)
    assert image.shape == (64, 64) and meta["format"] == "png"
    jpg = next((shared_data / "siim_covid_256" / "images").glob("*.jpg"))
    image, meta = load_cxr(jpg)
    assert image.shape == (256, 256) and meta["format"] == "jpeg"
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

    reference, _ = load_cxr(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    image = sitk.GetImageFromArray(reference)
    image.SetSpacing((0.2, 0.3))
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(image, str(path))
    loaded, meta = load_cxr(path)
    np.testing.assert_array_equal(loaded, reference)
    assert meta["pixel_spacing"] == pytest.approx([0.3, 0.2])


# --- broken files: each one gets its own error class and a message naming the file ---------------

def _save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _broken_files(dicom_dir: Path, folder: Path) -> dict[str, tuple[Path, type[errors.PilletGANError], str]]:
    """Broken inputs made from the real files: name -> (path, expected error, expected words)."""
    cases: dict[str, tuple[Path, type[errors.PilletGANError], str]] = {}
    source = dicom_dir / "NIH_DX_UNCOMPRESSED.dcm"

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
    png.write_bytes((dicom_dir.parent / "rsna" / "images").glob("*.png").__next__().read_bytes()[:5000])
    cases["truncated_png"] = (png, errors.TruncatedFileError, "truncated")

    empty = folder / "empty.dcm"
    empty.write_bytes(b"")
    cases["empty"] = (empty, errors.TruncatedFileError, "empty")
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
    ds = pydicom.dcmread(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    ds.Rows, ds.Columns = 50000, 50000
    ds.PixelData = b"\x00" * 16
    path = _save(ds, tmp_path / "bomb.dcm")
    with pytest.raises(errors.ImplausibleDimensionsError, match="refusing to allocate"):
        load_cxr(path)


def test_dicom_without_preamble_reads(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    bare = FileDataset(str(tmp_path / "bare"), ds, file_meta=meta, preamble=None)
    bare.SOPInstanceUID = generate_uid()
    path = tmp_path / "bare_no_extension"
    bare.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    image, meta_out = load_cxr(path)
    assert image.shape == (1024, 1024) and meta_out["sop_instance_uid"] == bare.SOPInstanceUID


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
    assert len(records) == 6 + len(cases)
    for path in dicom_dir.glob("*.dcm"):
        assert by_name[path.name]["status"] == "ok"
        assert by_name[path.name]["rows"] > 0
    for path, expected, _ in cases.values():
        assert by_name[path.name]["status"] == "error"
        assert by_name[path.name]["error"] == expected.__name__
    text = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "inspect", str(dicom_dir)],
                          capture_output=True, text=True, timeout=300)
    assert text.returncode == 0
    assert text.stdout.count("ok ") == 6 and "MONOCHROME1" in text.stdout


def test_inspect_file_never_raises(tmp_path: Path) -> None:
    record = inspect_file(tmp_path / "nothing.dcm")
    assert record["status"] == "error" and record["error"] == "FileNotFoundInputError"
