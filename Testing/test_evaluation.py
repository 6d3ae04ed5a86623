"""Evaluation harness: floors, saved maps, ``pilletgan evaluate --maps`` end to end, the HTML report."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_tiny_model
from PIL import Image

from PilletGANLib.cli import main
from PilletGANLib.data.manifest import ManifestRecord, write_manifest
from PilletGANLib.errors import DataError
from PilletGANLib.evaluation import (
    SavedMaps,
    evaluate,
    grey_level_map,
    lung_prior_map,
    paired_comparison,
    random_map,
    read_per_image,
)
from PilletGANLib.evaluation.accumulator import METRIC_KEYS, truth_mask
from PilletGANLib.evaluation.floors import floor_prediction
from PilletGANLib.evaluation.maps import MapPrediction, find_map, read_array
from PilletGANLib.evaluation.sanity import SANITY_NOT_FOR_MAPS
from PilletGANLib.metrics import boxes_to_mask, dice, pointing_game, top_fraction_mask

ROWS, COLS = 32, 40  # 1280 pixels: the top 15 % is 192 pixels
BOX_A = (4, 4, 20, 16)  # x1, y1, x2, y2: cols 4-19 x rows 4-15 = 192 pixels
BOX_B = (20, 16, 36, 28)  # cols 20-35 x rows 16-27 = 192 pixels


# -- floors ----------------------------------------------------------------------------------------
def test_random_map_is_reproducible_smooth_and_seed_dependent():
    first, again, other = random_map((60, 90), 7), random_map((60, 90), 7), random_map((60, 90), 8)
    assert first.shape == (60, 90) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # smooth: neighbouring pixels are far more alike than the map's spread
    assert np.abs(np.diff(first, axis=1)).mean() < 0.2 * first.std()


def test_lung_prior_peaks_over_the_two_lungs():
    prior = lung_prior_map((300, 200))  # rows x cols, not square
    assert prior.shape == (300, 200) and prior.max() == pytest.approx(1.0)
    row, col = np.unravel_index(np.argmax(prior), prior.shape)
    assert 0.40 < row / 300 < 0.50 and 0.25 < col / 200 < 0.40  # patient's right lung, image left
    left, right = prior[:, :100], prior[:, 100:]
    assert right.max() > 0.99 and prior[:, 95:105].max() < 0.9 * prior.max()  # two peaks, a dip between
    assert left.max() > 0.99
    floor = floor_prediction("lung_prior", (300, 200), "any")
    assert floor.mask.sum() == round(0.15 * 300 * 200)
    assert len(floor.boxes) == 2 and floor.score == pytest.approx(1.0)


def test_random_floor_boxes_are_components_of_the_top_fraction():
    floor = floor_prediction("random_map", (64, 64), "image-1")
    np.testing.assert_array_equal(floor.heatmap, random_map((64, 64), zlib.crc32(b"image-1")))
    covered = boxes_to_mask(floor.boxes, (64, 64))
    assert (covered | ~floor.mask).all()  # every mask pixel lies in a box
    assert len(floor.boxes) == len(floor.box_scores) >= 1
    assert floor.box_scores.max() == pytest.approx(floor.score)


def test_grey_level_floor_is_the_scaled_image_and_needs_it():
    image = np.full((40, 60), 50.0)
    image[10:30, 5:25] = 200.0  # a dense patch in the image's left half
    floor = floor_prediction("grey_level", image.shape, "any", image=image)
    np.testing.assert_array_equal(floor.heatmap, grey_level_map(image))
    assert floor.heatmap.min() == 0.0 and floor.heatmap.max() == 1.0
    assert floor.heatmap[:, :30].sum() > floor.heatmap[:, 30:].sum()  # its mass leans to the dense side
    assert floor.score == pytest.approx(float(floor.heatmap.mean()))
    assert floor.mask.sum() == round(0.15 * 40 * 60) and floor.mask[10:30, 5:25].sum() == floor.mask.sum()
    with pytest.raises(ValueError, match="needs the image"):
        floor_prediction("grey_level", image.shape, "any")
    with pytest.raises(ValueError, match="needs the image"):
        floor_prediction("grey_level", (20, 20), "any", image=image)


def test_laterality_beyond_density_scores_only_where_the_grey_levels_mislead(tmp_path):
    """Six one-sided images: on two the healthy half holds a denser patch than the sick one. A map that follows
    density misses exactly those two; a map of the truth hits them."""
    records, images = [], {}
    for index in range(6):
        sick_left = index % 2 == 0
        image = np.full((40, 60), 50.0)
        sick = slice(5, 25) if sick_left else slice(35, 55)
        healthy = slice(35, 55) if sick_left else slice(5, 25)
        image[10:30, sick] = 120.0
        image[10:30, healthy] = 200.0 if index < 2 else 60.0  # images 0 and 1: density on the healthy side
        box = [sick.start, 10.0, sick.stop, 30.0]
        records.append(ManifestRecord(tmp_path / f"i{index}.png", "disease", split="test", boxes=np.array([box])))
        images[records[-1].key] = image
    records.append(ManifestRecord(tmp_path / "h.png", "healthy", split="test"))
    images[records[-1].key] = np.full((40, 60), 50.0)

    def follows(truth: bool):
        def predict(record: ManifestRecord) -> MapPrediction:
            image = images[record.key]
            mask = truth_mask(record, image.shape)
            heatmap = image.copy() if not truth else np.zeros(image.shape) if mask is None else mask.astype(float)
            return MapPrediction(image=image, heatmap=heatmap, score=float(heatmap.max()))
        return predict

    truth = evaluate(records, follows(True), tmp_path / "truth", model_info={}, data_info={}, progress=False)
    density = evaluate(records, follows(False), tmp_path / "density", model_info={}, data_info={}, progress=False)
    assert truth["floors"]["grey_level"]["laterality_mass"] == pytest.approx(4 / 6)
    for metrics, expected in ((truth, 1.0), (density, 0.0)):
        beyond = metrics["laterality"]["beyond_density"]
        assert beyond["images"] == 2 and beyond["laterality_mass"] == expected
    assert density["laterality_mass"] == pytest.approx(4 / 6)
    assert "where the grey levels lean to the healthy half (2 images)" in (tmp_path / "truth" / "index.html").read_text()
    no_floors = evaluate(records, follows(True), tmp_path / "none", model_info={}, data_info={}, progress=False,
                         floors=False)
    assert "beyond_density" not in no_floors["laterality"]
    flags = {row.key: row.density_misleads for row in read_per_image(tmp_path / "truth" / "per_image.csv")}
    assert flags == {record.key: (index < 2 if record.is_disease else None) for index, record in enumerate(records)}
    assert {row.density_misleads for row in read_per_image(tmp_path / "none" / "per_image.csv")} == {None}
    paired = paired_comparison(read_per_image(tmp_path / "truth" / "per_image.csv"),
                               read_per_image(tmp_path / "density" / "per_image.csv"), resamples=50)
    assert paired["misled"] == 2 and paired["lateral"] == 6
    beyond = paired["laterality_mass_beyond_density"]
    assert (beyond["a"], beyond["b"], beyond["a_only"], beyond["b_only"]) == (1.0, 0.0, 2, 0)
    without_flags = paired_comparison(read_per_image(tmp_path / "truth" / "per_image.csv"),
                                      read_per_image(tmp_path / "none" / "per_image.csv"), resamples=50)
    assert without_flags["misled"] is None and without_flags["laterality_mass_beyond_density"] is None


def test_faint_laterality_scores_the_one_sided_images_whose_opacity_is_not_brighter_than_its_mirror(tmp_path):
    """Three one-sided images: A's opacity is darker than its mirror but a bright band keeps the sick half denser
    (faint, density does not mislead), B's is brighter than its mirror (neither), C's darker and nothing else
    (faint and density misleads). The subsets differ, and a map of the image itself is right on A only among them."""
    records, images = [], {}
    for name, mirror, band in (("A", 200.0, True), ("B", 60.0, False), ("C", 200.0, False)):
        image = np.full((40, 60), 50.0)
        image[10:30, 5:25] = 120.0  # the opacity, in the left half
        image[10:30, 35:55] = mirror  # the same place in the right half
        if band:
            image[30:40, 0:30] = 255.0
        records.append(ManifestRecord(tmp_path / f"{name}.png", "disease", split="test",
                                      boxes=np.array([[5.0, 10.0, 25.0, 30.0]])))
        images[records[-1].key] = image

    def follows(truth: bool):
        def predict(record: ManifestRecord) -> MapPrediction:
            image = images[record.key]
            heatmap = truth_mask(record, image.shape).astype(float) if truth else image.copy()
            return MapPrediction(image=image, heatmap=heatmap, score=float(heatmap.max()))
        return predict

    truth = evaluate(records, follows(True), tmp_path / "truth", model_info={}, data_info={}, progress=False)
    density = evaluate(records, follows(False), tmp_path / "density", model_info={}, data_info={}, progress=False,
                       floors=False)
    rows = {row.key: row for row in read_per_image(tmp_path / "truth" / "per_image.csv")}
    assert {k: (r.faint_opacity, r.density_misleads) for k, r in rows.items()} == {
        "A": (True, False), "B": (False, False), "C": (True, True)}
    assert truth["laterality"]["faint"]["images"] == 2 and truth["laterality"]["faint"]["laterality_mass"] == 1.0
    assert density["laterality"]["faint"]["laterality_mass"] == 0.5  # right on A, wrong on C
    assert "beyond_density" not in density["laterality"]  # no floors: no density flag, yet the faint flag
    assert "where the opacity is no brighter than its mirror (2 images)" in (tmp_path / "truth" / "index.html").read_text()
    paired = paired_comparison(read_per_image(tmp_path / "truth" / "per_image.csv"),
                               read_per_image(tmp_path / "density" / "per_image.csv"), resamples=50)
    faint = paired["laterality_mass_faint"]
    assert paired["faint"] == 2 and (faint["a"], faint["b"], faint["a_only"], faint["b_only"]) == (1.0, 0.5, 1, 0)
    assert paired["misled"] is None  # the density report has no grey-level floor


# -- saved maps -------------------------------------------------------------------------------------
def _write_png8(path: Path, rows: int = ROWS, cols: int = COLS) -> Path:
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 256, (rows, cols), dtype=np.uint8)).save(path)
    return path


def test_read_array_formats_are_rows_by_cols(tmp_path):
    values = np.arange(ROWS * COLS, dtype=np.uint16).reshape(ROWS, COLS) * 50
    np.save(tmp_path / "a.npy", values.astype(np.float32))
    Image.fromarray(values).save(tmp_path / "b.png")
    sitk.WriteImage(sitk.GetImageFromArray(values.astype(np.float32)), str(tmp_path / "c.nii.gz"))
    for name in ("a.npy", "b.png", "c.nii.gz"):
        np.testing.assert_array_equal(read_array(tmp_path / name), values)
    np.save(tmp_path / "bad.npy", np.full((ROWS, COLS), np.nan))
    with pytest.raises(DataError, match=r"bad\.npy.*NaN"):
        read_array(tmp_path / "bad.npy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"cube\.npy.*2-D"):
        read_array(tmp_path / "cube.npy")


def test_hostile_maps_and_sidecars_are_refused_by_name(tmp_path):
    """A header announcing 10^10 values asked numpy for 80 GB (MemoryError); an empty array, a 400-digit score,
    a nested JSON, NaN, boolean or inverted boxes and values beyond float32 ended in ValueError, OverflowError,
    RecursionError or were scored as given."""
    bomb = np.lib.format.open_memmap(tmp_path / "bomb.npy", mode="w+", dtype=np.float64, shape=(100_000, 100_000))
    del bomb  # a sparse file: its header announces 80 GB
    np.save(tmp_path / "empty.npy", np.zeros((0, COLS)))
    np.save(tmp_path / "huge.npy", np.full((ROWS, COLS), 1e300))
    for name, message in (("bomb.npy", "100000 x 100000 pixels"), ("empty.npy", "0 x 40 pixels"),
                          ("huge.npy", "beyond what 32-bit floating point holds")):
        with pytest.raises(DataError, match=rf"{name}: .*{message}"):
            read_array(tmp_path / name)
    record = ManifestRecord(image=_write_png8(tmp_path / "img1.png"), label="disease")
    maps = tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "img1.npy", np.zeros((ROWS, COLS)))
    box = '{"x1": 1, "y1": 2, "x2": 3, "y2": 4, "score": 0.5}'
    for sidecar, message in (('{"score": 1' + "0" * 400 + "}", "'score' must be a finite number"),
                             ("[" * 100_000 + "]" * 100_000, "cannot be read as JSON"),
                             ('{"boxes": [' + box.replace("1,", "NaN,") + "]}", "finite numbers"),
                             ('{"boxes": [' + box.replace("1,", "true,") + "]}", "finite numbers"),
                             ('{"boxes": [' + box.replace('"x2": 3', '"x2": 0') + "]}", "x2 > x1")):
        (maps / "img1.json").write_text(sidecar)
        with pytest.raises(DataError, match=rf"img1\.json: .*{message}"):
            SavedMaps(maps)(record)


def test_saved_maps_errors_name_the_file(tmp_path):
    record = ManifestRecord(image=_write_png8(tmp_path / "img1.png"), label="disease")
    maps = tmp_path / "maps"
    maps.mkdir()
    with pytest.raises(DataError, match=r"img1\.npy, img1\.nii\.gz, img1\.png"):
        SavedMaps(maps)(record)
    np.save(maps / "img1.npy", np.zeros((COLS, ROWS)))  # transposed
    with pytest.raises(DataError, match=r"img1\.npy: map is 40 x 32 but image .*img1\.png is 32 x 40"):
        SavedMaps(maps)(record)
    np.save(maps / "img1.npy", np.zeros((ROWS, COLS)))
    (maps / "img1.json").write_text('{"score": "high"}')
    with pytest.raises(DataError, match=r"img1\.json: 'score' must be a finite number"):
        SavedMaps(maps)(record)
    (maps / "img1.json").write_text('{"score": 0.25, "boxes": [{"x1": 1, "y1": 2, "x2": 3, "y2": 4, "score": 0.5}]}')
    prediction = SavedMaps(maps)(record)
    assert prediction.score == 0.25 and prediction.mask is None and prediction.boxes[0]["y2"] == 4.0
    Image.fromarray(np.zeros((ROWS, COLS), np.uint16)).save(maps / "img1.png")
    with pytest.raises(DataError, match="several maps"):
        find_map(maps, "img1")
    with pytest.raises(DataError, match="maps folder not found"):
        SavedMaps(tmp_path / "absent")


def test_truth_mask_prefers_the_pixel_mask(tmp_path):
    mask = np.zeros((ROWS, COLS), dtype=np.uint8)
    mask[10:12, 5:9] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    record = ManifestRecord(image=tmp_path / "x.png", label="disease", boxes=np.array([BOX_A], float),
                            mask=tmp_path / "m.png")
    np.testing.assert_array_equal(truth_mask(record, (ROWS, COLS)), mask > 0)
    with pytest.raises(DataError, match=r"m\.png: mask is 32 x 40"):
        truth_mask(record, (COLS, ROWS))
    record.mask = None
    np.testing.assert_array_equal(truth_mask(record, (ROWS, COLS)), boxes_to_mask([BOX_A], (ROWS, COLS)))
    assert truth_mask(ManifestRecord(image=record.image, label="healthy"), (ROWS, COLS)) is None


# -- pilletgan evaluate --maps end to end ----------------------------------------------------------
def _build_case(root: Path) -> tuple[Path, Path]:
    """Four test images (A, B disease with one box each; C, D healthy), maps in three formats, a manifest.

    A (.npy): 1 inside its box, 0 elsewhere; no score in its JSON (score = max = 1), one box = the truth.
    B (16-bit .png): 40000 on rows 4-27 x cols 28-35 (192 pixels, 96 of them in its box), 1000 elsewhere;
      JSON score 0.6, no boxes.
    C (.nii.gz): constant 0.2; JSON score 0.7 and one false-positive box scored 0.5.
    D (.npy): constant 0; no JSON (score 0).
    A fifth image in split 'train' has no map: it must be left out by --split test.
    """
    images, maps = root / "images", root / "maps"
    images.mkdir()
    maps.mkdir()
    for name in ("A", "B", "C", "D", "E"):
        _write_png8(images / f"{name}.png")
    map_a = boxes_to_mask([BOX_A], (ROWS, COLS)).astype(np.float64)
    np.save(maps / "A.npy", map_a)
    (maps / "A.json").write_text(json.dumps({"boxes": [dict(zip(("x1", "y1", "x2", "y2"), BOX_A, strict=True), score=0.9)]}))
    map_b = np.full((ROWS, COLS), 1000, dtype=np.uint16)
    map_b[4:28, 28:36] = 40000
    Image.fromarray(map_b).save(maps / "B.png")
    (maps / "B.json").write_text(json.dumps({"score": 0.6}))
    sitk.WriteImage(sitk.GetImageFromArray(np.full((ROWS, COLS), 0.2, np.float32)), str(maps / "C.nii.gz"))
    (maps / "C.json").write_text(json.dumps({"score": 0.7, "boxes": [{"x1": 0, "y1": 0, "x2": 8, "y2": 8, "score": 0.5}]}))
    np.save(maps / "D.npy", np.zeros((ROWS, COLS)))
    records = [
        ManifestRecord(image=images / "A.png", label="disease", patient_id="p1", split="test", boxes=np.array([BOX_A], float)),
        ManifestRecord(image=images / "B.png", label="disease", patient_id="p2", split="test", boxes=np.array([BOX_B], float)),
        ManifestRecord(image=images / "C.png", label="healthy", patient_id="p3", split="test"),
        ManifestRecord(image=images / "D.png", label="healthy", patient_id="p4", split="test"),
        ManifestRecord(image=images / "E.png", label="healthy", patient_id="p5", split="train"),
    ]
    return write_manifest(records, root / "manifest.csv"), maps


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    manifest, maps = _build_case(root)
    out = root / "report"
    assert main(["evaluate", "--manifest", str(manifest), "--split", "test", "--maps", str(maps), "--out", str(out),
                 "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_evaluate_maps_reproduces_expected_numbers(evaluated):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    # detection: disease 1.0, 0.6 vs healthy 0.7, 0.0 -> pairs won: 1, 1, 0, 1 of 4
    assert metrics["detection_auc"] == 0.75
    # pointing: A's first maximum (row 4, col 4) is in its box; B's (row 4, col 28) is not
    assert metrics["pointing_game"] == 0.5
    # top 15 % = 192 pixels: A exactly its box (Dice 1), B half in its box (2 * 96 / 384 = 0.5)
    assert metrics["dice_top15"] == 0.75
    assert metrics["dice"] is None and metrics["iou"] is None  # saved maps have no mask
    # pixel AUROC pooled over A and B. Positives: 192 at 1.0 (A), 96 at 40000 and 96 at 1000 (B).
    # Negatives: 1088 at 0.0 (A), 96 at 40000 and 992 at 1000 (B): 2176 in all.
    won = 192 * 1088 + 96 * (1088 + 992 + 96 / 2) + 96 * (1088 + 992 / 2)
    assert metrics["pixel_auroc"] == pytest.approx(won / (384 * 2176), abs=1e-12)
    # RSNA: A exact box (1), B truth without prediction (0), C prediction without truth (0), D skipped
    assert metrics["rsna_map"] == pytest.approx(1 / 3, abs=1e-12)
    # FROC: 2 truths over 4 images; A's box hits at score 0.9 (FP 0), C's box is a FP at 0.5 (0.25 per image)
    froc = metrics["froc"]
    assert froc["curve"] == {"fp_per_image": [0.0, 0.0, 0.25], "sensitivity": [0.0, 0.5, 0.5]}
    assert froc["sensitivities"] == [0.5] * 7 and froc["n_truths"] == 2 and froc["n_images"] == 4
    assert metrics["counts"] == {"images": 4, "healthy": 2, "disease": 2, "localization_only": 0, "with_boxes": 2,
                                 "with_masks": 0, "localized": 2, "unilateral": 2}
    # laterality: A's box lies in the left half (cols 4-19 of 40), B's in the right (cols 20-35); A's map has all
    # its mass and its peak in the left half, B's (40000 on cols 28-35) in the right half
    assert (metrics["laterality_mass"], metrics["laterality_peak"]) == (1.0, 1.0)
    laterality = metrics["laterality"]
    assert (laterality["images"], laterality["left"], laterality["right"]) == (2, 1, 1)
    assert laterality["majority_floor"] == 0.5 and laterality["symmetric_floor"] == 0.5
    assert laterality["laterality_mass_interval"] == [1.0, 1.0]
    assert metrics["sanity"] == {"available": False, "reason": SANITY_NOT_FOR_MAPS}
    assert metrics["model"]["kind"] == "saved maps" and metrics["data"]["split"] == "test"
    assert set(METRIC_KEYS) <= set(metrics)


@pytest.mark.slow
def test_evaluate_scores_the_floors_with_the_same_keys(evaluated):
    floors = json.loads((evaluated / "metrics.json").read_text())["floors"]
    assert set(floors) == {"random_map", "lung_prior", "grey_level"}
    for name, values in floors.items():
        assert set(values) == set(METRIC_KEYS), name
        assert values["dice"] == values["dice_top15"]  # floors use their top 15 % as mask
    prior = lung_prior_map((ROWS, COLS))
    top = top_fraction_mask(prior)
    truths = [boxes_to_mask([box], (ROWS, COLS)) for box in (BOX_A, BOX_B)]
    lung = floors["lung_prior"]
    assert lung["detection_auc"] == 0.5  # the same map, so the same score, for every image
    assert lung["pointing_game"] == np.mean([pointing_game(prior, t) for t in truths])
    assert lung["dice_top15"] == pytest.approx(np.mean([dice(top, t) for t in truths]))


def test_evaluate_writes_per_image_table_and_figures(evaluated):
    with open(evaluated / "per_image.csv", newline="") as handle:
        rows = {row["key"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["A", "B", "C", "D"]
    assert (rows["A"]["pointing_hit"], rows["B"]["pointing_hit"], rows["C"]["pointing_hit"]) == ("1", "0", "")
    assert float(rows["A"]["dice_top15"]) == 1.0 and float(rows["B"]["dice_top15"]) == 0.5
    assert float(rows["C"]["score"]) == 0.7 and rows["C"]["n_boxes_pred"] == "1" and rows["B"]["n_boxes_true"] == "1"
    for name in ("roc.png", "froc.png", "overlays.png"):
        with Image.open(evaluated / name) as image:
            assert image.size[0] > 200 and np.asarray(image.convert("L")).std() > 5, name
    assert not list(evaluated.glob(".*.tmp"))


def test_evaluate_missing_map_fails_naming_the_image(tmp_path, capsys):
    manifest, maps = _build_case(tmp_path)
    assert main(["evaluate", "--manifest", str(manifest), "--maps", str(maps), "--out", str(tmp_path / "r"),
                 "--no-progress", "--no-floors"]) == 2
    assert "no saved map for image 'E'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "per_image.csv").exists() and not list((tmp_path / "r").glob(".*.tmp"))


# -- the HTML report in a headless browser ---------------------------------------------------------
def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_index_html_renders_in_headless_chromium(evaluated, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install -y chromium); .ci/run installs it")
    page = (evaluated / "index.html").resolve().as_uri()
    dom = _chromium("--dump-dom", page, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    sources = re.findall(r'<img src="([^"]+)"', dom.stdout)
    assert sorted(sources) == ["froc.png", "overlays.png", "roc.png"]
    assert 'data-images-loaded="3/3"' in dom.stdout  # every figure decoded in the page
    assert "Pointing game" in dom.stdout and "lung_prior" in dom.stdout
    shot = tmp_path / "shot.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1200,900", page, profile=tmp_path / "profile-shot")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (900, 1200)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and plots


# -- floors on real data -----------------------------------------------------------------------------
@pytest.mark.slow
def test_lung_prior_points_inside_siim_opacity_boxes_far_more_than_a_random_map(shared_data):
    labels = shared_data / "siim_covid_256" / "labels"
    if not labels.is_dir():
        pytest.skip(f"real data not available: {labels} is missing")
    with open(labels / "image_labels.csv", newline="") as handle:
        typical = {row["image_id"] for row in csv.DictReader(handle)
                   if row["study_label"] == "Typical Appearance" and int(row["n_opacity_boxes"]) > 0}
    boxes: dict[str, list[list[float]]] = {}
    with open(labels / "boxes_256.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image_id"] in typical:
                boxes.setdefault(row["image_id"], []).append([float(row[f"{c}_256"]) for c in ("x1", "y1", "x2", "y2")])
    assert len(boxes) > 2000
    prior = lung_prior_map((256, 256))
    prior_hits = [pointing_game(prior, boxes_to_mask(b, (256, 256))) for b in boxes.values()]
    random_hits = [pointing_game(random_map((256, 256), zlib.crc32(k.encode())), boxes_to_mask(b, (256, 256)))
                   for k, b in boxes.items()]
    # measured: 0.625 for the prior, 0.226 for the random map (2,267 images, folds 0-3)
    assert np.mean(prior_hits) > 0.55
    assert np.mean(random_hits) < 0.35
    assert np.mean(prior_hits) - np.mean(random_hits) > 0.25


# -- the model branch ------------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_model_streams_batched_predictions_and_stops_on_a_bad_file(tmp_path, capsys):
    manifest, _ = _build_case(tmp_path)
    model = make_tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "report"
    assert main(["evaluate", "--manifest", str(manifest), "--split", "test", "--model", str(model), "--out", str(out),
                 "--device", "cpu", "--batch-size", "3", "--no-progress", "--no-floors"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["kind"] == "model" and metrics["model"]["model_name"] == "tiny-untrained"
    assert metrics["counts"]["images"] == 4 and metrics["floors"] == {}
    assert metrics["dice"] is not None  # the model gives a mask
    with open(out / "per_image.csv", newline="") as handle:
        assert [row["key"] for row in csv.DictReader(handle)] == ["A", "B", "C", "D"]
    (tmp_path / "images" / "C.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["evaluate", "--manifest", str(manifest), "--split", "test", "--model", str(model), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 2
    assert "C.png" in capsys.readouterr().err


@pytest.mark.slow
def test_ranking_metrics_read_the_unclipped_difference_not_the_saturated_heat_map(tmp_path):
    """A heat map that saturates over a plateau has no single peak (argmax takes its first pixel): the pointing
    game and the top-15 % Dice rank a LesionResult's unclipped ``difference`` instead."""
    from types import SimpleNamespace

    from PilletGANLib.evaluation.harness import evaluate

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), np.uint8)).save(tmp_path / "x.png")
    record = ManifestRecord(image=tmp_path / "x.png", label="disease", split="test",
                            boxes=np.array([[20.0, 20.0, 30.0, 30.0]]))
    info = {"model_info": {"kind": "test"}, "data_info": {}, "floors": False, "progress": False}
    difference = np.zeros((40, 40), np.float32)
    difference[5:35, 5:35] = 1.0
    difference[25, 25] = 3.0  # the true peak, inside the box
    heatmap = np.clip(difference, 0, 1)  # saturated plateau: its first maximum is (5, 5), outside the box
    result = SimpleNamespace(heatmap=heatmap, difference=difference, score=1.0, mask=None, boxes=[])
    metrics = evaluate([record], lambda r: result, tmp_path / "with_difference", **info)
    assert metrics["pointing_game"] == 1.0
    plain = SimpleNamespace(heatmap=heatmap, score=1.0, mask=None, boxes=[])
    metrics = evaluate([record], lambda r: plain, tmp_path / "heat_only", **info)
    assert metrics["pointing_game"] == 0.0
    broken = SimpleNamespace(heatmap=heatmap, difference=np.zeros((4, 4)), score=1.0, mask=None, boxes=[])
    with pytest.raises(DataError, match="difference"):
        evaluate([record], lambda r: broken, tmp_path / "broken", **info)


def test_localization_only_images_count_for_the_map_and_laterality_not_for_detection(tmp_path):
    """The same three images scored with and without a localization-only image (a disease image with a low score
    and a false-positive box): detection AUC, RSNA mAP and FROC do not move; the map metrics and laterality count it."""
    from types import SimpleNamespace

    from PilletGANLib.evaluation.harness import evaluate

    for name in ("p", "h", "q", "x"):  # the images are only drawn in the overview panels: any image with contrast
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (ROWS, COLS), np.uint8)).save(tmp_path / f"{name}.png")
    left_map = boxes_to_mask([BOX_A], (ROWS, COLS)).astype(np.float32)
    records = [ManifestRecord(image=tmp_path / "p.png", label="disease", boxes=np.array([BOX_A], float)),
               ManifestRecord(image=tmp_path / "h.png", label="healthy"),
               ManifestRecord(image=tmp_path / "q.png", label="healthy")]
    extra = ManifestRecord(image=tmp_path / "x.png", label="disease", boxes=np.array([BOX_B], float),
                           localization_only=True)  # truth in the right half; its map below points left
    box = {"x1": 0, "y1": 0, "x2": 4, "y2": 4, "score": 0.9}
    predictions = {"p": SimpleNamespace(heatmap=left_map, score=0.8, mask=None, boxes=[]),
                   "h": SimpleNamespace(heatmap=np.zeros((ROWS, COLS)), score=0.5, mask=None, boxes=[]),
                   "q": SimpleNamespace(heatmap=np.zeros((ROWS, COLS)), score=0.1, mask=None, boxes=[]),
                   "x": SimpleNamespace(heatmap=left_map, score=0.0, mask=None, boxes=[box])}
    info = {"model_info": {"kind": "test"}, "data_info": {}, "floors": False, "progress": False}
    plain = evaluate(records, lambda r: predictions[r.key], tmp_path / "plain", **info)
    both = evaluate([*records, extra], lambda r: predictions[r.key], tmp_path / "both", **info)
    for key in ("detection_auc", "rsna_map", "froc"):
        assert both[key] == plain[key], key
    assert plain["detection_auc"] == 1.0 and plain["froc"]["n_images"] == 3
    assert (plain["pointing_game"], both["pointing_game"]) == (1.0, 0.5)
    assert both["counts"]["localization_only"] == 1 and both["counts"]["localized"] == 2
    assert both["laterality"]["images"] == 2 and both["laterality_mass"] == 0.5  # right on p, wrong on x
    with open(tmp_path / "both" / "per_image.csv", newline="") as handle:
        rows = {row["key"]: row for row in csv.DictReader(handle)}
    assert (rows["x"]["localization_only"], rows["x"]["truth_side"], rows["x"]["laterality_mass"]) == ("1", "right",
                                                                                                       "0.0")
    assert rows["p"]["localization_only"] == "" and rows["p"]["laterality_peak"] == "1.0"


def test_evaluate_model_runs_the_sanity_checks_and_reports_them(tmp_path):
    manifest, _ = _build_case(tmp_path)
    model = make_tiny_model(tmp_path / "tiny.pt", attention="lta")
    out = tmp_path / "report"
    assert main(["evaluate", "--manifest", str(manifest), "--split", "test", "--model", str(model), "--out", str(out),
                 "--device", "cpu", "--sanity", "3", "--no-progress", "--no-floors"]) == 0
    sanity = json.loads((out / "metrics.json").read_text())["sanity"]
    assert sanity["available"] and sanity["images"] == 3 and sanity["disease"] == 2  # A and B first, then healthy
    assert {row["key"] for row in sanity["per_image"][:2]} == {"A", "B"}
    page = (out / "index.html").read_text()
    assert "Sanity checks" in page and "grey-inverted image" in page and "Laterality" in page
    with pytest.raises(SystemExit) as exit_info:  # refused when parsed
        main(["evaluate", "--manifest", str(manifest), "--split", "test", "--model", str(model), "--out", str(out),
              "--sanity", "-1", "--no-progress"])
    assert exit_info.value.code == 2
