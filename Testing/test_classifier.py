"""The classifier baseline: MONAI DenseNet presets, its Grad-CAM predictor, a tiny training run, and
``pilletgan evaluate --model`` scoring it like a generator."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from PilletGANLib.cli import main
from PilletGANLib.data.manifest import ManifestRecord, read_manifest, write_manifest
from PilletGANLib.errors import ConfigurationError, ModelError
from PilletGANLib.evaluation.model import predictor_from_path
from PilletGANLib.inference import Predictor
from PilletGANLib.inference.classifier import ClassifierPredictor
from PilletGANLib.model_store import save_model
from PilletGANLib.networks import CLASSIFIER_PRESETS, classifier_from_card, generator_from_card
from PilletGANLib.networks.classifier import classifier_network_config
from PilletGANLib.transforms.pipeline import prepare_image

SIZE = 64


def small_card(**extra) -> dict:
    network, cam_layer = classifier_network_config("densenet-small")
    return {"name": "tiny classifier", "kind": "classifier", "network": network, "cam_layer": cam_layer,
            "preprocessing": {"image_size": SIZE, "margin": 1.0}, **extra}


def test_presets_build_monai_densenets_and_cards_are_checked():
    assert "densenet121" in CLASSIFIER_PRESETS
    big_network, big_layer = classifier_network_config("densenet121")
    big = classifier_from_card({"kind": "classifier", "network": big_network, "cam_layer": big_layer})
    assert 6.9e6 < sum(p.numel() for p in big.parameters()) < 7.0e6  # MONAI's DenseNet121 with one output
    small = classifier_from_card(small_card())
    assert sum(p.numel() for p in small.parameters()) < 1e5
    assert small(torch.zeros(2, 1, SIZE, SIZE)).shape == (2, 1)
    with pytest.raises(ModelError, match=r"cam_layer 'features\.nowhere'"):
        classifier_from_card(small_card(cam_layer="features.nowhere"))
    with pytest.raises(ModelError, match="one input channel"):
        classifier_from_card({**small_card(), "network": {**small_card()["network"], "in_channels": 3}})
    for key, value, words in (("growth_rate", 10**7, "network.growth_rate is 10000000, not a whole number from 1 to 512"),
                              ("init_features", "64", "network.init_features is '64'"),
                              ("block_config", [2, "x"], "network.block_config is [2, 'x'], not 1 to 8 blocks")):
        with pytest.raises(ModelError, match=re.escape(words)):  # an edited card: refused before any allocation
            classifier_from_card({**small_card(), "network": {**small_card()["network"], key: value}})
    with pytest.raises(ConfigurationError, match="unknown classifier network 'resnet'"):
        classifier_network_config("resnet")
    with pytest.raises(ModelError, match="classifier baseline"):  # no front door runs it as a generator by mistake
        generator_from_card(small_card())


def _radiograph(rng: np.random.Generator, square: bool, at: tuple[int, int] | None = None) -> np.ndarray:
    """An 80 x 100 source image: a vertical ramp from 0 to 1 with faint noise and, when ``square``, a 20 px checkered
    square (mid-grey cells, so that it changes none of the percentiles the intensity normalization reads)."""
    image = (np.linspace(0, 1, 80)[:, None] + rng.normal(0, 0.01, (80, 100))).astype(np.float32)
    if square:
        row, col = at if at is not None else (rng.integers(0, 60), rng.integers(0, 80))
        cells = (np.add.outer(np.arange(20) // 2, np.arange(20) // 2) % 2).astype(np.float32)
        image[row:row + 20, col:col + 20] = 0.35 + 0.3 * cells
    return image


def _bright_square_classifier() -> torch.nn.Module:
    """A DenseNet trained for a few steps, on images prepared as the predictor prepares them, to call an image with a
    checkered square "disease": its Grad-CAM must then sit on the square."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pool = torch.stack([prepare_image(_radiograph(rng, i % 2 == 1), {}, SIZE, 1.0).network_input for i in range(64)])
    labels = (torch.arange(64) % 2).float()[:, None]
    network = classifier_from_card(small_card())
    optimizer = torch.optim.Adam(network.parameters(), 3e-3)
    for _ in range(30):
        batch = torch.from_numpy(rng.choice(64, 16, replace=False))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(network(pool[batch].float()), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


@pytest.mark.slow
def test_grad_cam_points_at_the_evidence_in_the_source_grid(tmp_path, one_thread):
    network = _bright_square_classifier()
    weights = save_model(network.state_dict(), small_card(calibration={"heat_scale": 1.0, "threshold": 0.5}),
                         tmp_path / "classifier.pt")
    predictor = predictor_from_path(weights, device="cpu", batch_size=2)
    assert isinstance(predictor, ClassifierPredictor) and predictor.model_info["model_kind"] == "classifier"
    rng = np.random.default_rng(1)
    image = _radiograph(rng, True, at=(50, 70))  # not square: padded, then mapped back
    healthy = _radiograph(rng, False)
    sick, clean = predictor.predict_prepared([prepare_image(image, {}, SIZE, 1.0), prepare_image(healthy, {}, SIZE, 1.0)])
    assert sick.cam.shape == (80, 100) and sick.heatmap.shape == (80, 100) and sick.mask.shape == (80, 100)
    assert sick.score > 0.7 > 0.3 > clean.score
    row, col = np.unravel_index(np.argmax(sick.difference), sick.difference.shape)
    assert 40 <= row < 80 and 60 <= col < 100  # the map peaks on (or next to) the square
    assert sick.cam[50:70, 70:90].mean() > 2 * sick.cam[:, :50].mean()
    # Grad-CAM hooks live on a private copy: the network the sanity checks randomize stays a plain module
    assert not predictor.network._forward_hooks and not any(m._forward_hooks for m in predictor.network.modules())


def test_generator_loader_names_the_classifier_card(tmp_path):
    weights = save_model(classifier_from_card(small_card()).state_dict(), small_card(), tmp_path / "c.pt")
    with pytest.raises(ModelError, match="classifier baseline"):
        Predictor.from_path(weights)


def _write_images(folder: Path, count: int, disease: bool, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.normal(60, 8, (72, 72)).clip(0, 255)
        if disease:
            row, col = rng.integers(8, 40, 2)
            pixels[row:row + 20, col:col + 20] = 220
        path = folder / f"{'d' if disease else 'h'}{seed}_{i}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _localization_only_record(folder: Path, split: str, seed: int, box: list[float]) -> ManifestRecord:
    """One synthetic disease image written to ``folder``, as a localization-only record with ``box``."""
    path = _write_images(folder, 1, True, seed)[0]
    return ManifestRecord(path, "disease", split=split, localization_only=True, boxes=np.array([box]))


def _train_tiny(manifest: Path, run: Path, *settings: str) -> None:
    """``pilletgan model train-classifier`` with the small preset at the test size, batch 8, and ``settings``."""
    arguments = ["model", "train-classifier", "--manifest", str(manifest), "--out", str(run), "--no-progress"]
    for setting in ("network=densenet-small", f"image_size={SIZE}", "batch_size=8", *settings):
        arguments += ["--set", setting]
    assert main(arguments) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny training run on synthetic images (a bright square = disease), and its manifest."""
    root = tmp_path_factory.mktemp("classifier")
    records = []
    for split, seed in (("train", 0), ("val", 1)):
        for path in _write_images(root / split, 12, True, seed):
            row, col = 0, 0
            records.append(ManifestRecord(path, "disease", split=split, boxes=np.array([[col, row, 72, 72.0]])))
        records += [ManifestRecord(p, "healthy", split=split) for p in _write_images(root / split, 12, False, seed + 10)]
    # a localization-only image in val: scored for the map, never trained on, never in the detection AUC
    records.append(_localization_only_record(root / "val", "val", 99, [36.0, 0.0, 72.0, 72.0]))
    manifest = write_manifest(records, root / "manifest.csv")
    run = root / "run"
    _train_tiny(manifest, run, "epochs=4", "seed=3")
    return run, manifest


@pytest.mark.slow
def test_training_exports_a_checksummed_classifier_card(trained):
    run, _ = trained
    card = json.loads((run / "model.json").read_text())
    assert card["kind"] == "classifier" and card["network"]["preset"] == "densenet-small"
    assert card["cam_layer"] == "features.denseblock3" and card["preprocessing"]["image_size"] == SIZE
    training = card["training"]
    assert training["data"]["train_images"] == 24 and training["data"]["validation_images"] == 24  # no loc.-only
    assert training["iterations"] == 4 * 3 and training["epochs"] == 4  # 24 // 8 iterations per epoch
    assert [entry["epoch"] for entry in training["validation"]] == [1, 2, 3, 4]
    assert 0 <= training["validation"][-1]["val_auc"] <= 1
    assert card["calibration"]["healthy_images"] == 12 and card["calibration"]["heat_scale"] > 0
    assert training["config"]["seed"] == 3
    state = torch.load(run / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.slow
def test_wall_time_budget_stops_a_run_and_still_exports(trained, tmp_path):
    _, manifest = trained
    run = tmp_path / "budget"
    _train_tiny(manifest, run, "epochs=1000", "max_minutes=0.01")
    card = json.loads((run / "model.json").read_text())
    assert card["training"]["iterations"] < 1000 * 3 and card["training"]["validation"]  # validated what it exports
    with pytest.raises(ConfigurationError, match="unknown setting 'epoch'"):
        from PilletGANLib.engine.classifier import ClassifierTrainingConfig
        from PilletGANLib.engine.config import load_config

        load_config(None, ["epoch=3"], config_class=ClassifierTrainingConfig)


@pytest.mark.slow
def test_train_localization_only_adds_the_boxed_training_images_and_never_validates_them(trained, tmp_path):
    _, manifest = trained
    records = read_manifest(manifest, localization_only=True)
    records.append(_localization_only_record(tmp_path / "train", "train", 77, [0.0, 0.0, 36.0, 72.0]))
    manifest = write_manifest(records, tmp_path / "manifest.csv")
    run = tmp_path / "run"
    _train_tiny(manifest, run, "epochs=1", "train_localization_only=true")
    data = json.loads((run / "model.json").read_text())["training"]["data"]
    assert (data["train_images"], data["train_localization_only"], data["validation_images"]) == (25, 1, 24)


@pytest.mark.slow
def test_evaluate_scores_the_classifier_like_a_generator(trained, tmp_path):
    run, manifest = trained
    out = tmp_path / "report"
    assert main(["evaluate", "--manifest", str(manifest), "--split", "val", "--model", str(run / "model.pt"),
                 "--out", str(out), "--device", "cpu", "--sanity", "4", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["model_kind"] == "classifier"
    assert metrics["counts"]["images"] == 25 and metrics["counts"]["localization_only"] == 1
    with open(out / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    scores = {row["key"]: float(row["score"]) for row in rows}
    assert all(0 <= s <= 1 for s in scores.values())  # the classifier's probability
    from PilletGANLib.metrics import detection_auc

    clean = [row for row in rows if not row["localization_only"]]
    assert metrics["detection_auc"] == detection_auc([float(r["score"]) for r in clean],
                                                     [r["label"] == "disease" for r in clean])
    only = next(row for row in rows if row["localization_only"])
    assert only["truth_side"] == "right" and only["laterality_mass"] in ("0.0", "0.5", "1.0")
    sanity = metrics["sanity"]
    assert sanity["available"] and sanity["images"] == 4 and sanity["disease"] == 4
    assert len(sanity["per_image"]) == 4 and sanity["inverted"]["defined"] <= 4


@pytest.mark.parametrize("override, message", [
    ("learning_rate=nan", "learning_rate must be a number, got nan"),
    ("weight_decay=-1", "weight_decay must lie within"),
    ("dropout_prob=1.5", "dropout_prob must lie within"),
    ("margin=inf", "margin must be a number, got inf"),
    ("seed=-1", "seed must lie within"),
    ("network=resnet", "network must be one of"),
    ("batch_size=3", "batch_size must be even"),
    ("augment=maybe", "expected true or false"),
])
def test_classifier_settings_of_the_wrong_type_or_out_of_range_are_refused(override: str, message: str) -> None:
    """A NaN learning rate, a negative weight decay, a dropout of 1.5 or an infinite margin loaded and failed (or
    trained nonsense) only after the images were prepared."""
    from PilletGANLib.engine.classifier import ClassifierTrainingConfig
    from PilletGANLib.engine.config import load_config

    with pytest.raises(ConfigurationError, match=message):
        load_config(None, [override], config_class=ClassifierTrainingConfig)
