"""The demo: the synthetic sample study (a real DICOM CR file) and ``pilletgan demo`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import make_tiny_model
from PIL import Image
from scipy import ndimage

from PilletGANLib import load_cxr
from PilletGANLib.cli import main
from PilletGANLib.demo import PointingGame, make_phantom_radiograph, read_seg_frame, run_demo, write_sample_study
from PilletGANLib.errors import ModelError
from PilletGANLib.metrics import dice
from PilletGANLib.model_store import DEFAULT_MODEL_ENV, default_model_path
from PilletGANLib.transforms import estimate_lung_mask

SIZE = 768


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sample")
    return write_sample_study(root / "export", root / "truth", size=(SIZE, SIZE), seed=0)


@pytest.fixture(scope="module")
def tiny_demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("demo_model") / "tiny.pt", image_size=64)


@pytest.mark.slow
def test_phantom_dicom_passes_dciodvfy(study) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    run = subprocess.run(["dciodvfy", str(study.dicom_path)], capture_output=True, text=True, timeout=60)
    report = run.stdout + run.stderr
    assert "CRImage" in report, report  # dciodvfy recognized the IOD it checked against
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report


@pytest.mark.slow
def test_phantom_dicom_header(study) -> None:
    ds = pydicom.dcmread(study.dicom_path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
    assert (ds.Modality, ds.BodyPartExamined, ds.ViewPosition) == ("CR", "CHEST", "PA")
    assert (str(ds.PatientName), ds.PatientID) == ("PHANTOM^PILLETGAN", "PHANTOM-0001")
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
    assert int(ds.pixel_array.max()) < 4096
    np.testing.assert_array_equal(ds.pixel_array, study.phantom.pixels)
    assert ds.SOPInstanceUID == study.truth["sop_instance_uid"]
    assert len({ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}) == 3
    # laid out like an export: patient / study / series / image, nothing else in the export folder
    assert study.dicom_path.relative_to(study.export_dir).parts[0] == "PHANTOM-0001"
    assert [p for p in study.export_dir.rglob("*") if p.is_file()] == [study.dicom_path]


def test_phantom_reads_as_a_chest_radiograph(study) -> None:
    image, meta = load_cxr(study.dicom_path)
    masks = study.phantom.meta["masks"]
    assert image.shape == (SIZE, SIZE)
    assert meta["pixel_spacing"] == pytest.approx([409.6 / SIZE] * 2)
    assert (meta["modality"], meta["view_position"], meta["body_part"]) == ("CR", "PA", "CHEST")
    air, lungs, mediastinum = (float(image[m].mean()) for m in (~masks["body"], masks["lungs"], masks["mediastinum"]))
    assert air < lungs < mediastinum
    assert lungs < 0.75 * mediastinum and air < 0.2 * lungs
    bone = masks["bone"]
    assert bone.any()
    surroundings = ndimage.binary_dilation(bone, iterations=SIZE // 100) & ~bone
    assert image[bone].mean() > 1.15 * image[surroundings].mean()  # bone stands out from what is around it
    assert np.percentile(image[bone], 50) > np.percentile(image[masks["body"]], 60)


def test_lung_estimate_finds_the_phantom_lungs(study) -> None:
    image, _ = load_cxr(study.dicom_path)
    lungs = study.phantom.meta["masks"]["lungs"]
    estimate = estimate_lung_mask(image)
    assert dice(estimate, lungs) > 0.75
    assert (estimate & lungs).sum() / estimate.sum() > 0.8
    for side in ("right_lung", "left_lung"):  # each lung found, not just one of them
        assert (estimate & study.phantom.meta["masks"][side]).sum() > 0.6 * study.phantom.meta["masks"][side].sum()


def test_opacity_is_inside_one_lung_and_matches_its_truth_files(study) -> None:
    mask, meta = study.phantom.opacity_mask, study.phantom.meta
    lung = meta["masks"][f"{meta['opacity_side']}_lung"]
    assert mask.any() and not (mask & ~lung).any()
    assert 0.03 < mask.sum() / lung.sum() < 0.3
    assert ndimage.label(mask)[1] <= 3  # one consolidation, not scattered specks
    pixels = study.phantom.pixels.astype(np.float64)
    assert pixels[mask].mean() > pixels[lung & ~mask].mean() + 500  # clearly visible
    np.testing.assert_array_equal(np.asarray(Image.open(study.truth_mask_path)) > 0, mask)
    truth = json.loads(study.truth_json_path.read_text())
    rows, cols = np.nonzero(mask)
    assert truth["opacity"]["box"] == {"x1": cols.min(), "y1": rows.min(), "x2": cols.max() + 1, "y2": rows.max() + 1}
    assert truth["opacity"]["area_pixels"] == int(mask.sum())
    assert truth["image"] == study.dicom_path.relative_to(study.export_dir).as_posix()


def test_the_opacity_is_all_that_differs_from_the_healthy_twin() -> None:
    sick = make_phantom_radiograph((256, 256), opacity=True, seed=3)
    healthy = make_phantom_radiograph((256, 256), opacity=False, seed=3)
    assert not healthy.opacity_mask.any() and healthy.meta["opacity_box"] is None
    difference = sick.pixels.astype(np.int32) - healthy.pixels.astype(np.int32)
    assert difference[sick.opacity_mask].mean() > 500
    # elsewhere only the faint halo of the CR-like unsharp masking, fading with the distance from the opacity
    near = ndimage.binary_dilation(sick.opacity_mask, iterations=256 // 10)
    assert np.abs(difference[~near]).sum() < 0.02 * np.abs(difference).sum()
    assert np.abs(difference[~near]).max() < 200
    assert np.abs(difference[~ndimage.binary_dilation(near, iterations=256 // 10)]).max() <= 1


@pytest.mark.slow
def test_phantom_is_deterministic(tmp_path: Path) -> None:
    first = write_sample_study(tmp_path / "a" / "export", tmp_path / "a" / "truth", size=(256, 256), seed=7)
    again = write_sample_study(tmp_path / "b" / "export", tmp_path / "b" / "truth", size=(256, 256), seed=7)
    other = make_phantom_radiograph((256, 256), seed=8)
    assert first.dicom_path.read_bytes() == again.dicom_path.read_bytes()
    assert first.truth_mask_path.read_bytes() == again.truth_mask_path.read_bytes()
    assert not np.array_equal(first.phantom.pixels, other.pixels)
    assert not np.array_equal(first.phantom.opacity_mask, other.opacity_mask)
    changed = write_sample_study(tmp_path / "c" / "export", tmp_path / "c" / "truth", size=(256, 256), seed=8)
    assert changed.truth["sop_instance_uid"] != first.truth["sop_instance_uid"]


def test_pointing_game_ranks_the_unclipped_lesion_map_not_the_saturated_heat_map() -> None:
    lesion_map = np.zeros((8, 8))
    lesion_map[0:2, 0:2] = 2.0  # strong, but below the peak
    lesion_map[5, 5] = 3.0
    heatmap = np.clip(lesion_map, 0.0, 1.0)  # both regions saturate: the heat map alone cannot tell them apart
    truth = np.zeros((8, 8), dtype=bool)
    truth[4:7, 4:7] = True
    pointing = PointingGame.of(lesion_map, heatmap, truth)
    assert (pointing.peak_x, pointing.peak_y, pointing.peak_heat, pointing.hit) == (5, 5, 1.0, True)
    assert not PointingGame.of(heatmap, heatmap, truth).hit  # the plateau's first pixel in row-major order
    with pytest.raises(ValueError, match="differ in shape"):
        PointingGame.of(lesion_map, heatmap[:4], truth)


def test_demo_uses_no_shared_data() -> None:
    """The sample study is drawn by the project: the demo's code never refers to the shared data folder."""
    import PilletGANLib.demo as demo

    sources = sorted(Path(demo.__file__).parent.glob("*.py"))
    assert len(sources) >= 4
    for source in sources:
        assert "shared" not in source.read_text(encoding="utf-8").lower(), source


@pytest.mark.slow
def test_demo_command_writes_seg_overlay_json_and_index(tmp_path: Path, tiny_demo_model: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--model", str(tiny_demo_model), "--size", "512", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "demo.json").read_text())
    files = {kind: out / path for kind, path in record["files"].items()}
    for kind in ("seg", "heatmap_seg", "overlay", "result", "summary_csv", "run_json", "index", "dicom", "truth_json"):
        assert files[kind].is_file(), kind
        assert str(files[kind]) in printed, kind  # the command says where everything is
    seg = pydicom.dcmread(files["seg"])
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        pydicom.dcmread(files["dicom"], stop_before_pixels=True).SOPInstanceUID
    heat = read_seg_frame(files["heatmap_seg"])
    assert heat.shape == (512, 512) and 0.0 <= heat.min() <= heat.max() <= 1.0
    peak = record["pointing_game"]["peak_y"], record["pointing_game"]["peak_x"]
    assert heat[peak] == heat.max() == pytest.approx(record["pointing_game"]["peak_heat"])  # the SEG's hottest pixel
    result = json.loads(files["result"].read_text())
    assert result["score"] == pytest.approx(record["score"])
    assert Image.open(files["overlay"]).mode == "RGB"
    page = files["index"].read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and 'href="results/' in page
    assert "http://" not in page and "https://" not in page  # self-contained

    assert main(args) == 0  # a second run in the same demo folder replaces the first
    assert json.loads((out / "demo.json").read_text())["files"] == record["files"]


def test_demo_refuses_a_foreign_folder_and_a_missing_model(tmp_path: Path, tiny_demo_model: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(foreign), "--model", str(tiny_demo_model), "--size", "256", "--no-progress"]) == 2
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "missing.pt"))
    assert main(["demo", "--out", str(tmp_path / "new"), "--size", "256", "--no-progress"]) == 2
    assert not (tmp_path / "new").exists()


def _shipped_model_or_skip() -> None:
    try:
        default_model_path()
    except ModelError as err:
        pytest.skip(f"the shipped default model is not installed, so the demo cannot be checked with it: {err}")


@pytest.mark.slow
def test_default_model_runs_the_demo_through_the_batch_path(tmp_path: Path) -> None:
    """The shipped model analyses the phantom end to end and the demo's verdict matches the SEG it wrote."""
    _shipped_model_or_skip()
    summary = run_demo(tmp_path / "demo", model=None, device="cpu", progress=False, size=(1024, 1024))
    assert summary.exit_code == 0, summary.describe()
    assert summary.pointing is not None and summary.mask_dice is not None
    box = summary.study.truth["opacity"]["box"]
    inside_box = box["x1"] <= summary.pointing.peak_x <= box["x2"] and box["y1"] <= summary.pointing.peak_y <= box["y2"]
    assert summary.pointing.hit <= inside_box  # a hit lies inside the opacity, so inside its box
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["pointing_game"]["hit"] == summary.pointing.hit


@pytest.mark.slow
def test_default_model_reports_where_its_map_peaks_on_the_phantom(tmp_path: Path) -> None:
    """The default map is the GAN's own (no location template, no lung gate): on the phantom it may miss the opacity,
    and the demo must say which, with the peak inside the image."""
    _shipped_model_or_skip()
    summary = run_demo(tmp_path / "demo", model=None, device="cpu", progress=False, size=(1024, 1024))
    assert summary.exit_code == 0, summary.describe()
    pointing = summary.pointing
    assert pointing is not None and 0 <= pointing.peak_x < 1024 and 0 <= pointing.peak_y < 1024
    box = summary.study.truth["opacity"]["box"]
    in_box = box["x1"] <= pointing.peak_x <= box["x2"] and box["y1"] <= pointing.peak_y <= box["y2"]
    assert in_box or not pointing.hit, "a hit lies inside the opacity's box"
    assert ("inside" if pointing.hit else "OUTSIDE") in summary.describe()
