"""The learned lung-field prior: network, drawing, map blending, training, SIIM reader and shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import healthy_manifest, make_tiny_model, require_shared_data
from PIL import Image

from PilletGANLib.data.sources.siim_lung_fields import read_siim_lung_fields
from PilletGANLib.engine.lung_fields import (
    LungFieldTrainingConfig,
    box_iou,
    lung_field_tensors,
    save_lung_field_model,
    train_lung_field_net,
)
from PilletGANLib.errors import ConfigurationError, DataError, ModelError
from PilletGANLib.inference import LocalizationConfig, Predictor
from PilletGANLib.inference.lesion_map import lesion_maps_and_scores
from PilletGANLib.inference.lung_fields import LungFieldEstimator, lung_box_prior, lung_field_model_path
from PilletGANLib.model_store import default_model_path, read_card
from PilletGANLib.networks import LungFieldNet

SIIM = ("siim_covid_256",)


def test_lung_box_prior_draws_one_ellipse_per_half_of_the_box() -> None:
    box = torch.tensor([[0.1, 0.2, 0.9, 0.8]])
    prior = lung_box_prior(box, 100)[0, 0]
    assert prior.shape == (100, 100)
    assert float(prior[:20].max()) == 0 and float(prior[80:].max()) == 0  # above and below the box
    assert float(prior[:, :10].max()) == 0 and float(prior[:, 90:].max()) == 0
    assert float(prior[50, 30]) > 0.99 and float(prior[50, 70]) > 0.99  # centres of the two halves
    assert float(prior[50, 49:51].max()) < 0.1  # the halves meet at the midline
    swapped = lung_box_prior(torch.tensor([[0.9, 0.8, 0.1, 0.2]]), 100)[0, 0]
    assert torch.equal(prior, swapped)


def test_lung_field_net_gives_boxes_inside_the_image_for_any_grid() -> None:
    net = LungFieldNet().eval()
    for size in (64, 128):
        boxes = net(torch.randn(3, 1, size, size))
        assert boxes.shape == (3, 4) and bool(((boxes > 0) & (boxes < 1)).all())


def test_lung_prior_is_added_to_the_map_and_leaves_the_score_alone() -> None:
    torch.manual_seed(0)
    images, healed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    gates = torch.ones(2, 1, 32, 32)
    priors = lung_box_prior(torch.tensor([[0.1, 0.1, 0.9, 0.9], [0.2, 0.1, 0.8, 0.7]]), 32)
    plain_maps, plain_scores = lesion_maps_and_scores(images, healed, LocalizationConfig(), gates, gates)
    config = LocalizationConfig(lung_prior=0.3)
    maps, scores = lesion_maps_and_scores(images, healed, config, gates, gates, lung_priors=priors)
    assert torch.allclose(maps, plain_maps + 0.3 * priors)
    assert torch.equal(scores, plain_scores)
    with pytest.raises(ConfigurationError, match="lung-field"):
        lesion_maps_and_scores(images, healed, config, gates, gates)
    with pytest.raises(ConfigurationError, match="lung_prior"):
        LocalizationConfig(lung_prior=-0.1)


def test_card_names_its_lung_field_model_beside_itself_only(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    assert lung_field_model_path({}, weights) is None
    assert lung_field_model_path({"lung_fields": "lung_fields.pt"}, weights) == tmp_path / "lung_fields.pt"
    assert lung_field_model_path({"lung_fields": "../../etc/x.pt"}, weights) == tmp_path / "x.pt"


def test_predictor_refuses_lung_prior_without_a_lung_field_model(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "tiny.pt")
    card = {**read_card(model), "localization": {"lung_prior": 0.1}}
    from PilletGANLib.networks import PilletGenerator

    generator = PilletGenerator(**card["network"])
    with pytest.raises(ModelError, match="lung-field model"):
        Predictor(generator, card, device="cpu")


def test_siim_lung_field_reader_names_the_bad_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file missing"):
        read_siim_lung_fields(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels" / "image_labels.csv").write_text("image_id,fold\na,0\n")
    boxes = tmp_path / "labels" / "lung_boxes_dungnb1333.csv"
    boxes.write_text("image_id,x1_256,y1_256,x2_256,y2_256\na,5,5,2,7\n")
    with pytest.raises(DataError, match="line 2: lung box"):
        read_siim_lung_fields(tmp_path)
    boxes.write_text("image_id,x1_256,y1_256,x2_256,y2_256\na,1,1,7,7\nmissing,1,1,7,7\n")
    records = read_siim_lung_fields(tmp_path)
    assert [(r.image.name, r.box, r.fold) for r in records] == [("a.jpg", (1.0, 1.0, 7.0, 7.0), 0)]


def test_training_lowers_the_loss_and_saves_a_loadable_model(tmp_path: Path) -> None:
    records = read_siim_lung_fields(require_shared_data(*SIIM))
    train = lung_field_tensors([r for r in records if r.fold == 0][:128], margin=0.9)
    val = lung_field_tensors([r for r in records if r.fold == 3][:32], margin=0.9)
    assert train[0].shape == (128, 1, 64, 64) and bool(((train[1] >= 0) & (train[1] <= 1)).all())
    config = LungFieldTrainingConfig(epochs=4, batch_size=32, seed=0)
    net, history = train_lung_field_net(train, val, config)
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    path = save_lung_field_model(net, tmp_path / "lf.pt", config, history, {"train_images": 128})
    loaded = LungFieldEstimator.from_path(path)
    assert torch.allclose(loaded.boxes(val[0]), net.eval()(val[0]))
    with pytest.raises(DataError, match="at least one batch"):
        train_lung_field_net((train[0][:8], train[1][:8]), val, config)


def test_shipped_lung_field_model_finds_held_out_lung_fields() -> None:
    records = [r for r in read_siim_lung_fields(require_shared_data(*SIIM)) if r.fold == 3][:96]
    model = default_model_path()
    estimator = LungFieldEstimator.from_path(lung_field_model_path(read_card(model), model))
    images, boxes = lung_field_tensors(records, margin=0.9)
    iou = box_iou(estimator.boxes(images), boxes)
    assert float(iou.mean()) > 0.8 and float(iou.quantile(0.1)) > 0.65


def test_calibrate_with_lung_fields_copies_them_beside_the_new_model(tmp_path: Path) -> None:
    manifest, images = healthy_manifest(tmp_path / "m.csv", 4)
    model = make_tiny_model(tmp_path / "tiny.pt")
    shipped = default_model_path()
    lung_fields = lung_field_model_path(read_card(shipped), shipped)
    out = tmp_path / "new" / "model.pt"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "calibrate", "--model", str(model),
                             "--manifest", str(manifest), "--out", str(out), "--no-progress",
                             "--set", "localization.lung_prior=0.05", "--lung-fields", str(lung_fields)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "calibrate", "--model", str(model),
                              "--manifest", str(manifest), "--out", str(tmp_path / "other.pt"), "--no-progress",
                              "--set", "localization.lung_prior=0.05"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--lung-fields" in missing.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["localization"]["lung_prior"] == 0.05 and card["lung_fields"] == lung_fields.name
    assert (out.parent / lung_fields.name).is_file() and (out.parent / lung_fields.with_suffix(".json").name).is_file()
    predictor = Predictor.from_path(out, device="cpu")
    assert predictor.lung_fields is not None
    result = predictor.predict_path(images[0])
    assert result.difference.max() >= 0.05 * 0.9  # the prior's peak is in the map
