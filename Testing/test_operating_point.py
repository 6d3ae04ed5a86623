"""The calibrated operating point (issue 25): a detection threshold fitted on healthy images at a stated
specificity, and the ``finding`` it calls in every result record, JSON, batch table and overlay."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import healthy_manifest, make_tiny_model

from PilletGANLib.batch import Status, run_batch
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.inference import LesionResult, Predictor
from PilletGANLib.localization import (
    Calibration,
    card_sections,
    detection_threshold_at,
    fit_calibration,
    localization_from_card,
)
from PilletGANLib.model_store import default_model_path, read_card
from PilletGANLib.outputs import NO_FINDING, OverlayCaption, write_result_files
from PilletGANLib.outputs.result_files import overlay_caption


def _result(score: float, calibration: Calibration) -> LesionResult:
    image = np.zeros((16, 20), dtype=np.float32)
    return LesionResult(image=image, healed=image, difference=image, heatmap=image, score=score,
                        calibration=calibration, mask=image > 0)


def test_detection_threshold_is_the_stated_quantile_of_healthy_scores() -> None:
    scores = np.random.default_rng(1).gamma(2.0, 0.05, size=400)
    threshold = detection_threshold_at(scores, 0.95)
    assert threshold == pytest.approx(np.percentile(scores, 95))
    assert np.mean(scores >= threshold) == pytest.approx(0.05, abs=0.005)  # 5 % of healthy images falsely suspected
    assert detection_threshold_at(scores, 0.8) < threshold
    assert detection_threshold_at(np.arange(101.0), 0.9) == pytest.approx(90.0)
    for bad, message in (([], "at least one"), ([0.1, float("nan")], "finite")):
        with pytest.raises(ValueError, match=message):
            detection_threshold_at(bad)
    for specificity in (0.0, 1.0, 95.0):
        with pytest.raises(ValueError, match=r"specificity must be in \(0, 1\)"):
            detection_threshold_at([0.1, 0.2], specificity)


def test_fit_calibration_records_the_threshold_beside_its_specificity() -> None:
    rng = np.random.default_rng(0)
    maps = [(rng.random((8, 8)).astype(np.float32), np.ones((8, 8))) for _ in range(20)]
    scores = rng.random(20)
    calibration, record = fit_calibration(maps, scores=scores, specificity=0.9)
    assert calibration.detection_threshold == pytest.approx(np.percentile(scores, 90))
    assert calibration.detection_specificity == 0.9
    section = card_sections(localization_from_card({})[0], calibration, record)["calibration"]
    assert section["detection_threshold"] == calibration.detection_threshold
    assert section["detection_specificity"] == 0.9
    assert localization_from_card({"calibration": section})[1] == calibration  # the card reads back the same
    without, _ = fit_calibration(maps)  # no scores: no operating point, no call
    assert without.detection_threshold is None and without.finding(10.0) is None
    with pytest.raises(ValueError, match="3 detection scores for 20 healthy maps"):
        fit_calibration(maps, scores=[0.1, 0.2, 0.3])


def test_the_finding_is_the_score_against_the_threshold_and_is_checked() -> None:
    calibration = Calibration(detection_threshold=0.15, detection_specificity=0.95)
    assert [calibration.finding(s) for s in (0.107, 0.15, 0.188)] == ["not suspected", "suspected", "suspected"]
    with pytest.raises(ConfigurationError, match="go together"):
        Calibration(detection_threshold=0.15)
    with pytest.raises(ConfigurationError, match="go together"):
        Calibration(detection_specificity=0.95)
    with pytest.raises(ConfigurationError, match=r"detection_specificity must be in \(0, 1\)"):
        Calibration(detection_threshold=0.15, detection_specificity=95.0)


def test_an_old_card_without_a_threshold_loads_and_makes_no_call(tmp_path: Path) -> None:
    """The shipped card predates the operating point: it loads, and its results carry ``finding: null``."""
    old = {"localization": {"heat_scale": 0.2, "threshold": 0.4}, "calibration": {"percentile": 75.0}}
    _, calibration = localization_from_card(old)
    assert calibration == Calibration(0.2, 0.4)
    result = _result(0.188, calibration)
    assert result.finding is None
    record = result.summary()
    assert record["finding"] is None and record["detection_threshold"] is None
    assert overlay_caption(result).finding == NO_FINDING
    written = write_result_files(result, tmp_path, "old", formats=("json",))
    assert json.loads(written["json"].read_text())["finding"] is None
    shipped = localization_from_card(read_card(default_model_path()))[1]  # loads, with or without a threshold
    assert (shipped.finding(0.5) is None) == (shipped.detection_threshold is None)


def test_records_json_and_overlay_carry_the_call(tmp_path: Path) -> None:
    calibration = Calibration(0.2, 0.4, detection_threshold=0.15, detection_specificity=0.95)
    for score, finding in ((0.188, "suspected"), (0.107, "not suspected")):
        result = _result(score, calibration)
        assert result.finding == finding
        written = write_result_files(result, tmp_path, f"s{score}", formats=("png", "json"))
        record = json.loads(written["json"].read_text())
        assert (record["finding"], record["detection_threshold"], record["detection_specificity"]) == (
            finding, 0.15, 0.95)
        assert written["overlay_png"].is_file()
    caption = overlay_caption(_result(0.188, calibration))
    assert caption.lines()[0][0] == ("PilletGAN lesion heat map  |  score 0.188 - finding: suspected (at score >= "
                                     "0.150, 95 % specificity on healthy images)  |  mask threshold 0.40")
    assert OverlayCaption(score=0.1, finding=NO_FINDING).lines()[0][0].endswith(
        "finding: none (the model card has no detection threshold)")


@pytest.fixture(scope="module")
def recalibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """A tiny model, and its copy recalibrated by the command line at 50 % specificity on 6 healthy images."""
    root = tmp_path_factory.mktemp("operating_point")
    manifest, images = healthy_manifest(root / "m.csv", 6)
    model = make_tiny_model(root / "tiny.pt")
    out = root / "recalibrated.pt"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                             "--manifest", str(manifest), "--out", str(out), "--no-progress", "--specificity", "0.5"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return model, out, images


@pytest.mark.slow
def test_calibrate_command_writes_the_threshold_at_the_stated_specificity(recalibrated) -> None:
    model, out, images = recalibrated
    section = json.loads(out.with_suffix(".json").read_text())["calibration"]
    assert section["detection_specificity"] == 0.5 and section["healthy_images"] == 6
    predictor = Predictor.from_path(out, device="cpu")
    results = [predictor.predict_path(image) for image in images]
    scores = np.array([r.score for r in results])
    assert section["detection_threshold"] == pytest.approx(np.median(scores), rel=1e-4, abs=1e-6)
    assert [r.finding for r in results] == ["suspected" if s >= section["detection_threshold"] else "not suspected"
                                            for s in scores]
    assert Predictor.from_path(model, device="cpu").predict_path(images[0]).finding is None  # the uncalibrated copy
    bad = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                          "--manifest", "m.csv", "--out", "x.pt", "--specificity", "95"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--specificity: must be in (0, 1)" in bad.stderr


def test_batch_records_and_summary_carry_the_finding_and_resume_follows_the_threshold(
        dicom_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    from test_batch import build_clean_export

    export, out = tmp_path / "export", tmp_path / "out"
    build_clean_export(export, dicom_dir, count=2)
    predictor = Predictor.from_path(tiny_model, device="cpu", batch_size=2)
    calibration = predictor.localizer.calibration
    predictor.localizer.calibration = calibration.replace(detection_threshold=-1.0, detection_specificity=0.95)
    summary = run_batch(export, out, predictor, png=True, progress=False)
    assert [r.finding for r in summary.records] == ["suspected"] * 2
    with open(summary.summary_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["finding"] for row in rows] == ["suspected"] * 2
    for record in summary.records:
        assert json.loads((out / record.files["result"]).read_text())["finding"] == "suspected"
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["detection_threshold"] == -1.0 and run["settings"]["detection_specificity"] == 0.95
    # a new operating point makes the earlier records out of date: resumed, they are made again with the new call
    predictor.localizer.calibration = calibration.replace(detection_threshold=1e9, detection_specificity=0.95)
    resumed = run_batch(export, out, predictor, png=True, resume=True, progress=False)
    assert [(r.status, r.finding) for r in resumed.records] == [(Status.SUCCEEDED, "not suspected")] * 2
    again = run_batch(export, out, predictor, png=True, resume=True, progress=False)
    assert [(r.status, r.finding) for r in again.records] == [(Status.ALREADY_DONE, "not suspected")] * 2


@pytest.mark.slow
def test_infer_prints_and_writes_the_finding(recalibrated, tmp_path: Path) -> None:
    _, out, images = recalibrated
    threshold = json.loads(out.with_suffix(".json").read_text())["calibration"]["detection_threshold"]
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "infer", str(images[0]), "--out", str(tmp_path),
                             "--model", str(out), "--formats", "json", "png"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    expected = "suspected" if record["score"] >= threshold else "not suspected"
    assert record["finding"] == expected and record["detection_specificity"] == 0.5
    assert f"score {record['score']:.4f}, {expected}," in result.stdout
