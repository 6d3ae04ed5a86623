"""``pilletgan model check-healing``: an independent classifier reads a model's healed twins."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from PilletGANLib.cli import main
from PilletGANLib.data.manifest import ManifestRecord, write_manifest
from PilletGANLib.evaluation.healing import HealingRow, healing_rows, healing_summary, left_half_masks, side_hit
from PilletGANLib.model_store import save_model
from PilletGANLib.networks import classifier_from_card
from PilletGANLib.networks.classifier import classifier_network_config
from PilletGANLib.transforms.pipeline import prepare_image

SIZE = 32


class BrightPixels(torch.nn.Module):
    """A 'classifier' whose logit is the share of bright pixels (a square of opacity) minus a little."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return ((images > 0.5).float().mean(dim=(1, 2, 3)) * 100 - 1)[:, None]


def _predictor(heal) -> SimpleNamespace:
    return SimpleNamespace(image_size=SIZE, margin=1.0, device=torch.device("cpu"),
                           translate=lambda images: (heal(images), []),
                           localizer=SimpleNamespace(mirrored_healing=lambda _heal, _images: None))


def _records(folder: Path) -> list[ManifestRecord]:
    """Two healthy images, and two with a bright square in one half each (boxes say where), plus a broken file."""
    rng = np.random.default_rng(0)
    records = []
    for name, column in (("h0", None), ("h1", None), ("left", 6), ("right", 44)):
        pixels = rng.normal(60, 8, (64, 64)).clip(0, 255)
        if column is not None:
            pixels[20:34, column:column + 14] = 230
        path = folder / f"{name}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        boxes = np.array([[column, 20, column + 14, 34]], dtype=float) if column is not None else np.zeros((0, 4))
        records.append(ManifestRecord(path, "healthy" if column is None else "disease", split="val", boxes=boxes))
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    records.append(ManifestRecord(broken, "healthy", split="val"))
    return records


def test_a_twin_that_heals_finds_the_side_and_one_that_changes_nothing_does_not(tmp_path, caplog):
    records = _records(tmp_path)
    classifier = SimpleNamespace(image_size=SIZE, margin=1.0, device=torch.device("cpu"), network=BrightPixels())
    healed = healing_rows(_predictor(lambda x: x.clamp(max=0.3)), classifier, records, batch_size=3)
    assert [row.key for row in healed] == ["h0", "h1", "left", "right"]  # the broken file is logged and left out
    assert "broken.png" in caplog.text
    assert [row.truth_side for row in healed] == [None, None, "left", "right"]
    summary = healing_summary(healed)
    assert summary["one_sided"] == 2 and summary["side_heal"] == 1.0 and summary["side_mirror"] == 1.0
    assert summary["auc_input"] == 1.0 and summary["disease_logit_falls"] == 1.0
    assert summary["disease_twins_below_healthy_median"] == 1.0

    unchanged = healing_summary(healing_rows(_predictor(lambda x: x), classifier, records, batch_size=3))
    assert unchanged["side_heal"] == 0.5 and unchanged["disease_logit_falls"] == 0.0  # every drop is a tie
    assert unchanged["auc_twin"] == unchanged["auc_input"] == 1.0
    assert unchanged["disease_twins_below_healthy_median"] == 0.0


def test_side_hit_compares_the_drops_of_the_two_halves():
    row = HealingRow("k", "disease", "left", input_logit=2.0, twin_logit=0.0, heal_left=0.5, heal_right=1.5,
                     mirror_left=1.0, mirror_right=1.0)
    assert side_hit(row, "heal") == 1.0 and side_hit(row, "mirror") == 0.5
    assert side_hit(HealingRow(**{**row.__dict__, "truth_side": "right"}), "heal") == 0.0
    with pytest.raises(ValueError, match="one-sided"):
        side_hit(HealingRow(**{**row.__dict__, "truth_side": None}), "heal")


def test_half_masks_split_at_the_source_midline_after_padding():
    rng = np.random.default_rng(0)
    wide = prepare_image(rng.random((40, 100), np.float32), {}, SIZE, 1.0)  # padded above and below
    tall = prepare_image(rng.random((100, 40), np.float32), {}, SIZE, 1.0)  # padded left and right
    masks = left_half_masks([wide, tall])
    assert masks.shape == (2, 1, 1, SIZE)
    assert masks.sum(-1).flatten().tolist() == [SIZE / 2, SIZE / 2] and masks[:, 0, 0, 0].tolist() == [1.0, 1.0]


def test_the_command_writes_both_files_and_refuses_a_classifier_of_another_size(tmp_path, tiny_model, capsys):
    manifest = write_manifest([r for r in _records(tmp_path) if r.key != "broken"], tmp_path / "manifest.csv")
    network, cam_layer = classifier_network_config("densenet-small")
    card = {"name": "tiny classifier", "kind": "classifier", "network": network, "cam_layer": cam_layer,
            "preprocessing": {"image_size": SIZE, "margin": 1.0}}
    torch.manual_seed(0)
    classifier = save_model(classifier_from_card(card).state_dict(), card, tmp_path / "clf.pt")
    out = tmp_path / "check"
    arguments = ["model", "check-healing", "--manifest", str(manifest), "--model", str(tiny_model), "--no-progress",
                 "--device", "cpu"]
    assert main([*arguments, "--classifier", str(classifier), "--out", str(out)]) == 0
    summary = json.loads((out / "healing.json").read_text())
    assert summary["images"] == 4 and summary["one_sided"] == 2 and 0.0 <= summary["side_heal"] <= 1.0
    with (out / "healing_per_image.csv").open() as handle:
        assert [row["truth_side"] for row in csv.DictReader(handle)] == ["", "", "left", "right"]

    other = save_model(classifier_from_card(card).state_dict(),
                       {**card, "preprocessing": {"image_size": 64, "margin": 1.0}}, tmp_path / "clf64.pt")
    capsys.readouterr()
    assert main([*arguments, "--classifier", str(other), "--out", str(tmp_path / "no")]) == 2
    assert "64 px" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert main([*arguments, "--classifier", str(tiny_model), "--out", str(tmp_path / "no")]) == 2
    assert "is a PilletGAN model" in capsys.readouterr().err
