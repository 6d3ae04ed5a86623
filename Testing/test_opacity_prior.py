"""The learned opacity-location prior: fitting, drawing, map blending, model files, calibration and evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import healthy_manifest, make_tiny_model, require_shared_data

from PilletGANLib.data.manifest import ManifestRecord
from PilletGANLib.engine.config import TrainingConfig
from PilletGANLib.engine.opacity_prior import fit_siim_opacity_prior
from PilletGANLib.errors import ConfigurationError, DataError, ModelError
from PilletGANLib.evaluation.harness import evaluate
from PilletGANLib.inference import LocalizationConfig, Predictor
from PilletGANLib.inference.lesion_map import lesion_maps_and_scores
from PilletGANLib.inference.lung_fields import lung_field_model_path
from PilletGANLib.inference.opacity_prior import OpacityPrior, fit_opacity_template, warp_opacity_template
from PilletGANLib.model_store import default_model_path, read_card


def test_template_counts_box_cover_in_lung_field_coordinates_mirror_averaged() -> None:
    lung = (100.0, 50.0, 300.0, 250.0)  # 200 x 200 pixels
    lower_left = np.array([[100.0, 150.0, 200.0, 250.0]])  # u in [0, 0.5), v in [0.5, 1)
    frames = [(lung, lower_left), (lung, lower_left), (lung, np.zeros((0, 4))), (lung, lower_left * 0 + [[0, 0, 1, 1]])]
    template, used = fit_opacity_template(frames, grid=14, extent=(0.0, 1.0))
    assert used == 3  # the frame without boxes is not counted; the far-away box still counts its image
    assert template.shape == (14, 14)
    assert float(template[10, 2]) == pytest.approx(2 / 3 / 2)  # covered in 2 of 3 images, halved by the mirror
    assert float(template[10, 11]) == pytest.approx(1 / 3)  # the mirror image of the box, by symmetry
    assert float(template[2, 2]) == 0.0  # upper lung: never covered
    assert torch.equal(template, template.flip(-1))
    with pytest.raises(DataError, match="no image with opacity boxes"):
        fit_opacity_template([(lung, np.zeros((0, 4)))])
    with pytest.raises(DataError, match="empty"):
        fit_opacity_template([((5.0, 5.0, 5.0, 9.0), lower_left)])


def test_warp_draws_the_template_through_each_lung_field_box() -> None:
    template = torch.zeros(10, 10)
    template[7, 2] = 1.0  # u, v centre = 0.25, 0.75 with extent (0, 1)
    boxes = torch.tensor([[0.2, 0.1, 0.6, 0.9], [0.6, 0.9, 0.2, 0.1]])  # the second with its corners swapped
    maps = warp_opacity_template(template, boxes, 100, extent=(0.0, 1.0))
    assert maps.shape == (2, 1, 100, 100)
    row, col = divmod(int(maps[0, 0].argmax()), 100)
    assert abs(col - (0.2 + 0.25 * 0.4) * 100) <= 2 and abs(row - (0.1 + 0.75 * 0.8) * 100) <= 2
    assert torch.equal(maps[0], maps[1])
    assert float(maps[0, 0, :, 70:].max()) == 0.0  # past the box (and the template's extent): nothing


def test_opacity_prior_is_scaled_by_each_images_score_and_leaves_the_score_alone() -> None:
    torch.manual_seed(0)
    images, healed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    healed[1] = images[1]  # the second image is "healthy": no difference, score 0
    gates = torch.ones(2, 1, 32, 32)
    priors = torch.rand(2, 1, 32, 32)
    plain_maps, plain_scores = lesion_maps_and_scores(images, healed, LocalizationConfig(), gates, gates)
    config = LocalizationConfig(opacity_prior=4.0)
    maps, scores = lesion_maps_and_scores(images, healed, config, gates, gates, opacity_priors=priors)
    assert torch.equal(scores, plain_scores) and float(scores[1]) == 0.0
    expected = plain_maps + 4.0 * plain_scores[:, None, None, None] * priors
    assert torch.allclose(maps, expected)
    assert torch.equal(maps[1], plain_maps[1])  # no evidence, no prior
    with pytest.raises(ConfigurationError, match="opacity-location prior"):
        lesion_maps_and_scores(images, healed, config, gates, gates)
    with pytest.raises(ConfigurationError, match="opacity_prior must be >= 0"):
        LocalizationConfig(opacity_prior=-1.0)
    with pytest.raises(ConfigurationError, match="not used while training"):
        TrainingConfig(localization={"opacity_prior": 1.0})


def test_opacity_prior_file_round_trips_and_refuses_other_models(tmp_path: Path) -> None:
    template = torch.rand(12, 12)
    path = OpacityPrior(template, {"name": "test prior"}).save(tmp_path / "prior.pt")
    loaded = OpacityPrior.from_path(path)
    assert torch.equal(loaded.template, template) and loaded.card["name"] == "test prior"
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9]])
    assert torch.equal(loaded.maps(boxes, 20), warp_opacity_template(template, boxes, 20))
    shipped = default_model_path()
    with pytest.raises(ModelError, match="not an opacity-location prior"):
        OpacityPrior.from_path(lung_field_model_path(read_card(shipped), shipped))


def test_siim_prior_puts_opacities_in_the_lower_lateral_lung_fields(tmp_path: Path) -> None:
    summary = fit_siim_opacity_prior(require_shared_data("siim_covid_256"), tmp_path / "prior.pt")
    assert summary["val_folds"] == [3] and summary["train_images"] > 1000
    peak = summary["peak"]
    assert peak["v"] > 0.5 and min(peak["u"], 1 - peak["u"]) < 0.35 and peak["value"] > 0.5
    template = OpacityPrior.from_path(tmp_path / "prior.pt").template
    grid = template.shape[0]
    upper, lower = template[: grid // 2].mean(), template[grid // 2:].mean()
    assert float(lower) > 1.5 * float(upper)


def test_calibrated_model_carries_the_prior_and_evaluate_scores_it_as_a_floor(tmp_path: Path) -> None:
    manifest, images = healthy_manifest(tmp_path / "m.csv", 4)
    model = make_tiny_model(tmp_path / "tiny.pt")
    shipped = default_model_path()
    lung_fields = lung_field_model_path(read_card(shipped), shipped)
    template = torch.zeros(8, 8)
    template[4:7, 1:3] = template[4:7, 5:7] = 1.0
    prior = OpacityPrior(template).save(tmp_path / "priors" / "opacity_prior.pt")
    out = tmp_path / "new" / "model.pt"
    command = [sys.executable, "-m", "PilletGANLib.cli", "calibrate", "--model", str(model), "--manifest",
               str(manifest), "--no-progress", "--set", "localization.opacity_prior=5", "--lung-fields", str(lung_fields)]
    missing = subprocess.run([*command, "--out", str(tmp_path / "other.pt")], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2 and "--opacity-prior" in missing.stderr
    result = subprocess.run([*command, "--out", str(out), "--opacity-prior", str(prior)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["localization"]["opacity_prior"] == 5 and card["opacity_prior"] == "opacity_prior.pt"
    assert (out.parent / "opacity_prior.pt").is_file() and (out.parent / "opacity_prior.json").is_file()

    predictor = Predictor.from_path(out, device="cpu")
    assert predictor.opacity_prior is not None
    prediction = predictor.predict_path(images[0])
    assert prediction.location_prior is not None and prediction.location_prior.shape == prediction.heatmap.shape
    assert float(prediction.location_prior.max()) > 0.5
    predictor.localization.opacity_prior = 0.0
    assert predictor.predict_path(images[0]).location_prior is None  # a prior the map does not use is not reported
    predictor.localization.opacity_prior = 5.0
    record = ManifestRecord(image=images[0], label="disease", split="val", boxes=np.array([[8.0, 30.0, 30.0, 56.0]]))
    metrics = evaluate([record, ManifestRecord(image=images[1], label="healthy", split="val")],
                       lambda r: predictor.predict_path(r.image), tmp_path / "report", model_info={}, data_info={},
                       progress=False)
    assert set(metrics["floors"]) == {"random_map", "lung_prior", "model_prior"}
    assert metrics["floors"]["model_prior"]["dice_top15"] is not None
    paired = metrics["vs_model_prior"]  # the map against its own prior, image by image
    assert paired["images"] == 2 and paired["localized"] == 1
    assert paired["pointing_game"]["a"] == metrics["pointing_game"]
    assert paired["pointing_game"]["b"] == metrics["floors"]["model_prior"]["pointing_game"]
    assert paired["dice_top15"]["b"] == pytest.approx(metrics["floors"]["model_prior"]["dice_top15"])
    assert "location prior alone" in (tmp_path / "report" / "index.html").read_text()


def test_shipped_model_names_its_prior_and_draws_it_into_the_map() -> None:
    shipped = default_model_path()
    card = read_card(shipped)
    assert card["localization"]["opacity_prior"] > 0 and card["opacity_prior"] == "opacity_prior.pt"
    predictor = Predictor.from_path(shipped, device="cpu")
    assert predictor.opacity_prior is not None and predictor.opacity_prior.card["training"]["data"]["val_folds"] == [3]
    image = np.zeros((128, 128), np.float32)
    image[16:112, 20:108] = 1.0  # a bright body with two dark lungs
    image[28:100, 28:60] = image[28:100, 68:100] = 0.3
    result = predictor.predict_array(image)
    assert result.location_prior is not None and result.location_prior.shape == image.shape
