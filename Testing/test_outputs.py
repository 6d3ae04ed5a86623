"""Per-image output writers: every file round-trips (values, shape, spacing, Slicer metadata) and is written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from dicom_factory import JPEG_BASELINE, JPEG_SPACING_MM, MONO1_UNCOMPRESSED
from PIL import Image
from slicerio.segmentation import terminology_entry_to_string

from PilletGANLib import load_cxr
from PilletGANLib.errors import ConfigurationError, OutputError
from PilletGANLib.inference import LesionBox, LesionResult
from PilletGANLib.localization import Calibration
from PilletGANLib.outputs import (
    FORMATS,
    RESEARCH_BANNER,
    OverlayCaption,
    atomic_path,
    json_ready,
    output_stem,
    whole_name_stem,
    write_overlay_png,
    write_result_files,
    write_seg_nrrd,
    write_volume,
)
from PilletGANLib.outputs.naming import MAX_STEM_LENGTH
from PilletGANLib.outputs.overlay import BANNER_COLOR, PREDICTED_COLOR, TRUTH_COLOR

EXPECTED_TERMINOLOGY = ("PilletGAN - pneumonia opacity~SCT^49755003^Morphologically Abnormal Structure"
                        "~DCM^112001^Opacity~^^~Anatomic codes - DICOM master list~SCT^39607008^Lung~^^")


def _blob(shape: tuple[int, int], centre: tuple[float, float], sigma: tuple[float, float]) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-(((rows - centre[0]) / sigma[0]) ** 2 + ((cols - centre[1]) / sigma[1]) ** 2)).astype(np.float32)


def _result(image: np.ndarray, meta: dict, threshold: float = 0.5) -> LesionResult:
    """A LesionResult built by hand on a real image: one hot blob in the right lung, its box."""
    rows, cols = image.shape
    heatmap = _blob(image.shape, (0.55 * rows, 0.3 * cols), (0.1 * rows, 0.08 * cols))
    mask = heatmap >= threshold
    ys, xs = np.nonzero(mask)
    box = LesionBox(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 1.0, int(mask.sum()))
    return LesionResult(image=image, healed=image, difference=heatmap, heatmap=heatmap, score=0.81,
                        calibration=Calibration(threshold=threshold),
                        mask=mask, boxes=[box], meta={**meta, "model_name": "test", "model_version": "0"})


@pytest.fixture(scope="module")
def siim_result(dicom_dir: Path) -> LesionResult:
    image, meta = load_cxr(dicom_dir / JPEG_BASELINE)
    return _result(image, meta)


def test_default_formats_write_one_heat_map_and_one_mask(siim_result: LesionResult, tmp_path: Path) -> None:
    paths = write_result_files(siim_result, tmp_path, "x")
    assert sorted(paths) == ["heatmap_nrrd", "json", "overlay_png", "seg_nrrd"]
    assert sorted(os.listdir(tmp_path)) == ["x.json", "x.seg.nrrd", "x_heatmap.nrrd", "x_overlay.png"]


@pytest.mark.slow
def test_result_files_round_trip(siim_result: LesionResult, tmp_path: Path) -> None:
    result = siim_result
    stem = output_stem(result.meta["source_path"])
    assert stem == "CR_JPEG_BASELINE"
    paths = write_result_files(result, tmp_path / "out", stem, formats=tuple(FORMATS),
                               extra={"min_component_fraction": 0.002})

    expected = {"heatmap_nifti": f"{stem}_heatmap.nii.gz", "mask_nifti": f"{stem}_mask.nii.gz",
                "heatmap_nrrd": f"{stem}_heatmap.nrrd", "seg_nrrd": f"{stem}.seg.nrrd",
                "overlay_png": f"{stem}_overlay.png", "json": f"{stem}.json"}
    assert {kind: path.name for kind, path in paths.items()} == expected
    assert sorted(os.listdir(tmp_path / "out")) == sorted(expected.values()), "temporary files were left behind"

    rows, cols = result.shape
    for kind in ("heatmap_nifti", "heatmap_nrrd"):
        image = sitk.ReadImage(str(paths[kind]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), result.heatmap[np.newaxis])
        np.testing.assert_allclose(image.GetSpacing(), (JPEG_SPACING_MM, JPEG_SPACING_MM, 1.0))
    mask_image = sitk.ReadImage(str(paths["mask_nifti"]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask_image)[0], result.mask.astype(np.uint8))

    nifti = nib.load(paths["heatmap_nifti"])
    assert nifti.shape == (cols, rows, 1)
    np.testing.assert_array_equal(np.asarray(nifti.dataobj)[:, :, 0].T, result.heatmap)
    np.testing.assert_allclose(nifti.header.get_zooms(), (JPEG_SPACING_MM, JPEG_SPACING_MM, 1.0), rtol=1e-6)

    segmentation = slicerio.read_segmentation(str(paths["seg_nrrd"]))
    segment = slicerio.segment_from_name(segmentation, "Lesion")
    assert terminology_entry_to_string(segment["terminology"]) == EXPECTED_TERMINOLOGY
    header = nrrd.read_header(str(paths["seg_nrrd"]))
    assert f"TerminologyEntry:{EXPECTED_TERMINOLOGY}|" in header["Segment0_Tags"]
    assert header["Segment0_Name"] == "Lesion"
    assert segment["terminology"]["type"] == ["DCM", "112001", "Opacity"]
    assert segment["terminology"]["anatomicRegion"] == ["SCT", "39607008", "Lung"]
    np.testing.assert_allclose(segment["color"], (0.902, 0.2, 0.102), atol=1e-6)
    mask = slicerio.segment_mask(segmentation, segment)[:, :, 0].T
    np.testing.assert_array_equal(mask, result.mask)
    np.testing.assert_allclose(np.diag(segmentation["ijkToLPS"])[:3], (JPEG_SPACING_MM, JPEG_SPACING_MM, 1.0))

    with Image.open(paths["overlay_png"]) as overlay:  # the image, with the legend to its right and below it
        assert overlay.width > cols and overlay.height > rows and overlay.mode == "RGB"

    record = json.loads(paths["json"].read_text())
    assert record["score"] == pytest.approx(0.81) and record["threshold"] == pytest.approx(0.5)
    assert record["files"] == expected
    assert record["sop_instance_uid"] == result.meta["sop_instance_uid"]
    assert record["pixel_spacing"] == pytest.approx([JPEG_SPACING_MM] * 2, rel=1e-5)
    assert record["mask_pixels"] == int(result.mask.sum())
    assert record["boxes"][0]["x1"] == result.boxes[0].x1
    assert record["min_component_fraction"] == 0.002


def test_volumes_keep_orientation_and_anisotropic_spacing(tmp_path: Path) -> None:
    array = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    for name in ("map.nii.gz", "map.nrrd"):
        write_volume(array, tmp_path / name, spacing=[0.2, 0.3])
        image = sitk.ReadImage(str(tmp_path / name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image)[0], array)
        np.testing.assert_allclose(image.GetSpacing(), (0.3, 0.2, 1.0))
    nifti = nib.load(tmp_path / "map.nii.gz")
    np.testing.assert_array_equal(np.asarray(nifti.dataobj)[:, :, 0], array.T)
    np.testing.assert_allclose(nifti.header.get_zooms(), (0.3, 0.2, 1.0), rtol=1e-6)

    mask = np.zeros((5, 7), dtype=bool)
    mask[1, 5] = mask[3, 0] = True
    write_seg_nrrd(mask, tmp_path / "mask.seg.nrrd", spacing=[0.2, 0.3], segment_name="Opacity", color=(0, 1, 0))
    segmentation = slicerio.read_segmentation(str(tmp_path / "mask.seg.nrrd"))
    np.testing.assert_array_equal(slicerio.segment_mask(segmentation, "Opacity")[:, :, 0].T, mask)
    np.testing.assert_allclose(np.diag(segmentation["ijkToLPS"])[:3], (0.3, 0.2, 1.0))


@pytest.mark.slow
def test_overlay_downscales_keeping_aspect_and_draws_boxes(dicom_dir: Path, tmp_path: Path) -> None:
    sample, _ = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    image = np.kron(sample, np.ones((6, 6), np.float32))  # 1920 x 1728: larger than the 1024 px overlay
    rows, cols = image.shape
    heatmap = _blob(image.shape, (1200, 500), (150, 150))
    predicted = {"x1": 300, "y1": 1000, "x2": 700, "y2": 1400, "score": 0.9}
    truth = (1100, 300, 1500, 700)
    caption = OverlayCaption(score=0.1874, threshold=0.5, warnings=("the pixels look like a negative",))
    path = write_overlay_png(image, heatmap, tmp_path / "o.png", boxes=[predicted], truth_boxes=[truth], threshold=0.5,
                             caption=caption)
    with Image.open(path) as overlay:
        pixels = np.asarray(overlay.convert("RGB")).astype(int)
    scale = 1024 / rows
    width = round(cols * scale)
    assert pixels.shape[0] > 1024 and pixels.shape[1] > width  # the caption below, the colour bar to the right
    mid_y = round(1200 * scale)
    assert tuple(pixels[mid_y, round(300 * scale) + 1]) == PREDICTED_COLOR
    assert tuple(pixels[round(500 * scale), round(1100 * scale) + 1]) == TRUTH_COLOR
    hot = pixels[mid_y, round(500 * scale)]
    assert hot[0] - hot[2] > 30, "the heat map colour is missing where the heat is high"
    cold = pixels[round(200 * scale), round(1700 * scale)]
    assert cold[0] == cold[1] == cold[2], "the image should stay grey where there is no heat"
    bar = pixels[30:1000, width + 30:width + 40]  # inside the bar (a margin of 1/40 of the image, then the bar)
    top, bottom = bar[:5].mean(axis=(0, 1)), bar[-5:].mean(axis=(0, 1))
    assert top.sum() > 500 and bottom.sum() < 100, "no colour bar from bright (1) to dark (0)"
    banner_rows = (np.abs(pixels[1024:] - BANNER_COLOR).sum(axis=2) == 0).mean(axis=1) > 0.5
    assert banner_rows.any(), "no research-use banner"
    assert [text for text, _ in caption.lines()] == [
        "PilletGAN lesion heat map  |  score 0.187  |  mask threshold 0.50", "WARNING: the pixels look like a negative",
        RESEARCH_BANNER]


def test_overlay_caption_shows_a_finding_when_given() -> None:
    lines = OverlayCaption(score=0.19, threshold=0.4, finding="suspected").lines()
    assert lines[0][0] == "PilletGAN lesion heat map  |  score 0.190 - finding: suspected  |  mask threshold 0.40"
    assert lines[-1][0] == RESEARCH_BANNER


def test_atomic_path_leaves_old_file_and_no_temporary_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".") and temporary.suffix == ".json"
        temporary.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["record.json"]

    with atomic_path(tmp_path / "a.nii.gz") as temporary:
        assert temporary.name.endswith(".nii.gz")
        temporary.write_bytes(b"x")
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz", "record.json"]

    with pytest.raises(OutputError, match="does not exist"), atomic_path(tmp_path / "missing" / "x.png"):
        pass
    with pytest.raises(OutputError, match="too long"), atomic_path(tmp_path / ("x" * 300 + ".png")):
        pass


@pytest.mark.parametrize("source_name", ["source.nrrd", "source.nii.gz"])
def test_outputs_of_a_volume_source_lie_on_its_grid(dicom_dir: Path, tmp_path: Path, source_name: str) -> None:
    """A NRRD / NIfTI radiograph with an origin and a rotated, anisotropic grid (what Slicer exports): every volume
    output has that grid, so it lies on the source in a viewer (they were written at the origin, axis-aligned)."""
    reference, _ = load_cxr(dicom_dir / JPEG_BASELINE)
    source = sitk.GetImageFromArray(reference[np.newaxis])
    source.SetSpacing((0.3, 0.2, 2.5))
    source.SetOrigin((-120.0, 35.5, 7.0))
    source.SetDirection((0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(source, str(tmp_path / source_name))
    image, meta = load_cxr(tmp_path / source_name)
    paths = write_result_files(_result(image, meta), tmp_path / "out", "source", formats=("nifti", "nrrd", "seg.nrrd"))
    for kind in ("heatmap_nifti", "mask_nifti", "heatmap_nrrd"):
        written = sitk.ReadImage(str(paths[kind]))
        assert written.GetSize() == source.GetSize()
        np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    segmentation = slicerio.read_segmentation(str(paths["seg_nrrd"]))
    np.testing.assert_allclose(segmentation["ijkToLPS"], meta["ijk_to_lps"], atol=1e-4)
    expected = np.eye(4)
    expected[:3, :3] = np.reshape(source.GetDirection(), (3, 3)) * source.GetSpacing()
    expected[:3, 3] = source.GetOrigin()
    np.testing.assert_allclose(meta["ijk_to_lps"], expected, atol=1e-4)


def test_a_source_grid_that_is_not_an_affine_matrix_is_refused(tmp_path: Path) -> None:
    flat, collinear = np.eye(4), np.eye(4)
    flat[2, 2] = 0.0
    collinear[:3, 1] = [1e-9, 0.0, 0.0]  # the second axis along the first
    for grid, words in ((flat, "independent axes"), (collinear, "independent axes"), (np.eye(3), "affine matrix"),
                        (np.full((4, 4), np.nan), "affine matrix")):
        with pytest.raises(OutputError, match=words):
            write_volume(np.zeros((3, 4)), tmp_path / "x.nrrd", None, grid)
    assert os.listdir(tmp_path) == []
    tiny = np.diag([1e-9, 1e-9, 1.0, 1.0])  # what a NRRD with 1e-9 mm pixels gives (the bundle failed on it)
    written = sitk.ReadImage(str(write_volume(np.zeros((3, 4)), tmp_path / "x.nrrd", None, tiny)))
    np.testing.assert_allclose(written.GetSpacing(), (1e-9, 1e-9, 1.0))


@pytest.mark.parametrize(
    ("array", "name", "spacing", "message"),
    [
        (np.zeros((2, 3, 4)), "x.nrrd", None, "2D"),
        (np.zeros((3, 4)), "x.mha", None, "unsupported"),
        (np.zeros((3, 4)), "x.nii.gz", [0.1, -1.0], "spacing"),
        (np.zeros((3, 4)), "x.nii.gz", [0.1], "spacing"),
    ],
)
def test_write_volume_refuses_bad_input(tmp_path: Path, array, name, spacing, message) -> None:
    with pytest.raises(OutputError, match=message):
        write_volume(array, tmp_path / name, spacing)
    assert os.listdir(tmp_path) == []


def test_write_result_files_checks_formats_and_stem(siim_result: LesionResult, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="dicom"):
        write_result_files(siim_result, tmp_path, "a", formats=("json", "dicom"))
    with pytest.raises(OutputError, match="stem"):
        write_result_files(siim_result, tmp_path, "../escape")
    paths = write_result_files(siim_result, tmp_path, "only", formats=("json",))
    assert list(paths) == ["json"] and os.listdir(tmp_path) == ["only.json"]
    assert json.loads(paths["json"].read_text())["files"] == {"json": "only.json"}


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("/data/RG1_UNCR.dcm", "RG1_UNCR"),
        ("scan.NII.GZ", "scan"),
        ("1.2.840.113619.2.55.3", "1.2.840.113619.2.55.3"),
        ("patient 7 (copy).png", "patient_7_copy_"),
        ("x.seg.nrrd", "x.seg"),
        (".dcm", "dcm"),
    ],
)
def test_output_stem(name: str, stem: str) -> None:
    assert output_stem(name) == stem


def test_long_stems_are_shortened_and_stay_apart() -> None:
    first, second = output_stem("a" * 246 + ".dcm"), output_stem("a" * 245 + "b.dcm")
    assert len(first) == len(second) == MAX_STEM_LENGTH and first != second
    assert first.startswith("a" * 150) and first == output_stem("/elsewhere/" + "a" * 246 + ".dcm")
    assert len(whole_name_stem("a" * 250 + ".png")) == MAX_STEM_LENGTH
    assert output_stem("a" * MAX_STEM_LENGTH + ".dcm") == "a" * MAX_STEM_LENGTH


def test_json_ready_handles_numpy_and_non_finite() -> None:
    value = {"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan"), "d": (np.int64(3), Path("/x"))}
    assert json_ready(value) == {"a": 0.5, "b": [1, 2], "c": None, "d": [3, "/x"]}


@pytest.mark.parametrize("spacing", [[1e308, 1e308], [1e-300, 1e-300]])
def test_a_spacing_itk_cannot_place_is_an_output_error(tmp_path: Path, spacing: list[float]) -> None:
    """ITK's RuntimeError from SetDirection ended `pilletgan infer` with a traceback."""
    with pytest.raises(OutputError, match="SimpleITK cannot place the map"):
        write_volume(np.zeros((3, 4)), tmp_path / "x.nrrd", spacing)
    assert os.listdir(tmp_path) == []
