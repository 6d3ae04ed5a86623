"""The auxiliary priors (:mod:`PilletGANLib.priors`): the lung-field model (network, drawing, training, SIIM
reader, shipped model) and the opacity-location template (fitting, drawing, files), and models that use them
(calibration, evaluation)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import healthy_manifest, make_tiny_model, require_shared_data
from PIL import Image

from PilletGANLib.data.manifest import ManifestRecord
from PilletGANLib.engine.config import TrainingConfig
from PilletGANLib.errors import ConfigurationError, DataError, ModelError
from PilletGANLib.evaluation.harness import evaluate
from PilletGANLib.inference import Predictor
from PilletGANLib.localization import Localizer
from PilletGANLib.model_store import companion_path, default_model_path, read_card
from PilletGANLib.priors import (
    LungFieldEstimator,
    LungFieldNet,
    OpacityTemplate,
    fit_opacity_template,
    lung_box_prior,
    warp_opacity_template,
)
from PilletGANLib.priors.siim import fit_siim_opacity_template, read_siim_lung_fields
from PilletGANLib.priors.training import (
    LungFieldTrainingConfig,
    box_iou,
    lung_field_tensors,
    save_lung_field_model,
    train_lung_field_net,
)

SIIM = ("siim_covid_256",)


def shipped_lung_fields() -> Path:
    shipped = default_model_path()
    return companion_path(read_card(shipped), "lung_fields", shipped)


def test_card_names_its_companion_models_beside_itself_only(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    assert companion_path({}, "lung_fields", weights) is None
    assert companion_path({"lung_fields": "lung_fields.pt"}, "lung_fields", weights) == tmp_path / "lung_fields.pt"
    assert companion_path({"lung_fields": "../../etc/x.pt"}, "lung_fields", weights) == tmp_path / "x.pt"
    with pytest.raises(ConfigurationError, match="not used while training"):
        TrainingConfig(localization={"opacity_prior": 1.0})



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


@pytest.mark.slow
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


@pytest.mark.slow
def test_shipped_lung_field_model_finds_held_out_lung_fields() -> None:
    records = [r for r in read_siim_lung_fields(require_shared_data(*SIIM)) if r.fold == 3][:96]
    estimator = LungFieldEstimator.from_path(shipped_lung_fields())
    images, boxes = lung_field_tensors(records, margin=0.9)
    iou = box_iou(estimator.boxes(images), boxes)
    assert float(iou.mean()) > 0.8 and float(iou.quantile(0.1)) > 0.65


@pytest.mark.slow
def test_calibrate_with_lung_fields_copies_them_beside_the_new_model(tmp_path: Path) -> None:
    manifest, images = healthy_manifest(tmp_path / "m.csv", 4)
    model = make_tiny_model(tmp_path / "tiny.pt")
    lung_fields = shipped_lung_fields()
    out = tmp_path / "new" / "model.pt"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                             "--manifest", str(manifest), "--out", str(out), "--no-progress",
                             "--set", "localization.lung_prior=0.05", "--lung-fields", str(lung_fields)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                              "--manifest", str(manifest), "--out", str(tmp_path / "other.pt"), "--no-progress",
                              "--set", "localization.lung_prior=0.05"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--lung-fields" in missing.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["localization"]["lung_prior"] == 0.05 and card["lung_fields"] == lung_fields.name
    assert (out.parent / lung_fields.name).is_file() and (out.parent / lung_fields.with_suffix(".json").name).is_file()
    predictor = Predictor.from_path(out, device="cpu")
    assert predictor.localizer.lung_fields is not None
    result = predictor.predict_path(images[0])
    assert result.difference.max() >= 0.05 * 0.9  # the prior's peak is in the map



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
    for grid in (0, -1, 100_000, 2.5):  # IndexError, ValueError, a 74 GB allocation
        with pytest.raises(ConfigurationError, match="the template grid must be a whole number of cells from 2"):
            fit_opacity_template(frames, grid=grid)


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


def test_opacity_prior_file_round_trips_and_refuses_other_models(tmp_path: Path) -> None:
    template = torch.rand(12, 12)
    path = OpacityTemplate(template, {"name": "test prior"}).save(tmp_path / "prior.pt")
    loaded = OpacityTemplate.from_path(path)
    assert torch.equal(loaded.template, template) and loaded.card["name"] == "test prior"
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9]])
    assert torch.equal(loaded.maps(boxes, 20), warp_opacity_template(template, boxes, 20))
    with pytest.raises(ModelError, match="not an opacity-location prior"):
        OpacityTemplate.from_path(shipped_lung_fields())


@pytest.mark.parametrize(("name", "section", "key", "value", "words"), [
    ("lung_fields", "network", "channels", ["16", 32], "network.channels is ['16', 32], not 1 to 8 whole numbers"),
    ("lung_fields", "network", "channels", [16, 10**9], "from 1 to 1024"),
    ("lung_fields", "network", "num_res_units", 1e9, "network.num_res_units is 1000000000.0, outside [0, 8]"),
    ("opacity_prior", None, "extent", ["x", 1.2], "extent is ['x', 1.2], not two increasing numbers"),
    ("opacity_prior", None, "extent", [1.2, -0.2], "not two increasing numbers"),
])
def test_an_edited_companion_card_is_refused_by_name(tmp_path: Path, name: str, section: str | None, key: str,
                                                     value: object, words: str) -> None:
    """A lung-field or template card with a string or an absurd size raised ValueError from inside MONAI (or asked
    for the memory of a billion channels); it is refused when the companion loads, naming the file."""
    source = default_model_path().parent / f"{name}.pt"
    weights = tmp_path / source.name
    weights.write_bytes(source.read_bytes())
    card = json.loads(source.with_suffix(".json").read_text())
    (card[section] if section else card)[key] = value
    weights.with_suffix(".json").write_text(json.dumps(card))
    loader = LungFieldEstimator if name == "lung_fields" else OpacityTemplate
    with pytest.raises(ModelError, match=f"{weights.name}: .*" + re.escape(words)):
        loader.from_path(weights)


@pytest.mark.slow
def test_siim_prior_puts_opacities_in_the_lower_lateral_lung_fields(tmp_path: Path) -> None:
    summary = fit_siim_opacity_template(require_shared_data("siim_covid_256"), tmp_path / "prior.pt")
    assert summary["val_folds"] == [3] and summary["train_images"] > 1000
    peak = summary["peak"]
    assert peak["v"] > 0.5 and min(peak["u"], 1 - peak["u"]) < 0.35 and peak["value"] > 0.5
    template = OpacityTemplate.from_path(tmp_path / "prior.pt").template
    grid = template.shape[0]
    upper, lower = template[: grid // 2].mean(), template[grid // 2:].mean()
    assert float(lower) > 1.5 * float(upper)


@pytest.mark.slow
def test_calibrated_model_carries_the_prior_and_evaluate_scores_it_as_a_floor(tmp_path: Path) -> None:
    manifest, images = healthy_manifest(tmp_path / "m.csv", 4)
    model = make_tiny_model(tmp_path / "tiny.pt")
    lung_fields = shipped_lung_fields()
    template = torch.zeros(8, 8)
    template[4:7, 1:3] = template[4:7, 5:7] = 1.0
    prior = OpacityTemplate(template).save(tmp_path / "priors" / "opacity_prior.pt")
    out = tmp_path / "new" / "model.pt"
    command = [sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model), "--manifest",
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
    assert predictor.localizer.opacity_template is not None
    prediction = predictor.predict_path(images[0])
    assert prediction.location_prior is not None and prediction.location_prior.shape == prediction.heatmap.shape
    assert float(prediction.location_prior.max()) > 0.5
    with_prior = predictor.localizer
    predictor.localizer = with_prior.with_recipe(with_prior.recipe.replace(opacity_prior=0.0))
    assert predictor.predict_path(images[0]).location_prior is None  # a prior the map does not use is not reported
    predictor.localizer = with_prior
    record = ManifestRecord(image=images[0], label="disease", split="val", boxes=np.array([[8.0, 30.0, 30.0, 56.0]]))
    metrics = evaluate([record, ManifestRecord(image=images[1], label="healthy", split="val")],
                       lambda r: predictor.predict_path(r.image), tmp_path / "report", model_info={}, data_info={},
                       progress=False)
    assert set(metrics["floors"]) == {"random_map", "lung_prior", "grey_level", "model_prior"}
    assert metrics["floors"]["model_prior"]["dice_top15"] is not None
    paired = metrics["vs_model_prior"]  # the map against its own prior, image by image
    assert paired["images"] == 2 and paired["localized"] == 1
    assert paired["pointing_game"]["a"] == metrics["pointing_game"]
    assert paired["pointing_game"]["b"] == metrics["floors"]["model_prior"]["pointing_game"]
    assert paired["dice_top15"]["b"] == pytest.approx(metrics["floors"]["model_prior"]["dice_top15"])
    assert "location prior alone" in (tmp_path / "report" / "index.html").read_text()


@pytest.mark.slow
def test_shipped_model_keeps_its_box_supervised_template_opt_in() -> None:
    """The shipped map is the GAN's own (the template fails the laterality target); the card still names the
    template so that ``--set localization.opacity_prior=...`` draws it."""
    shipped = default_model_path()
    card = read_card(shipped)
    assert card["localization"]["opacity_prior"] == 0 and card["opacity_prior"] == "opacity_prior.pt"
    predictor = Predictor.from_path(shipped, device="cpu")
    assert predictor.localizer.opacity_template is None
    predictor.localizer = Localizer.from_card({**card, "localization": {**card["localization"], "opacity_prior": 1.5}},
                                              shipped)
    template = predictor.localizer.opacity_template
    assert template is not None and template.card["training"]["data"]["val_folds"] == [3]
    image = np.zeros((128, 128), np.float32)
    image[16:112, 20:108] = 1.0  # a bright body with two dark lungs
    image[28:100, 28:60] = image[28:100, 68:100] = 0.3
    result = predictor.predict_array(image)
    assert result.location_prior is not None and result.location_prior.shape == image.shape
