"""Model files: checksummed cards, safe loading, the default model lookup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from PilletGANLib.errors import ConfigurationError, ModelError
from PilletGANLib.inference import Predictor
from PilletGANLib.model_store import DEFAULT_MODEL_ENV, default_model_path, load_model, sha256_file


def test_round_trip_and_checksum(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "model.pt")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(path) and card["weights_file"] == "model.pt"
    state, loaded_card, where = load_model(path)
    assert where == path and loaded_card["network"]["base_channels"] == 8
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "model.pt")
    state = torch.load(path, weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1  # a different model under the same card
    torch.save(state, path)
    with pytest.raises(ModelError, match="checksum mismatch") as caught:
        Predictor.from_path(path)
    assert str(path) in str(caught.value)


def test_missing_or_broken_card_is_refused(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "model.pt")
    card_path = path.with_suffix(".json")
    card_path.write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        load_model(path)
    card_path.unlink()
    with pytest.raises(ModelError, match="no model card"):
        load_model(path)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "absent.pt")


def test_pickled_objects_are_not_loaded(tmp_path: Path) -> None:
    """weights_only=True: a file that needs arbitrary unpickling is refused, not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1), "payload": Path("/")}, path)
    card = {"network": {}, "sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be loaded safely"):
        load_model(path)


def test_weights_that_do_not_fit_the_card(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "model.pt")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["network"]["base_channels"] = 16
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not fit"):
        Predictor.from_path(path)


@pytest.mark.parametrize(("section", "key", "value", "words"), [
    ("preprocessing", "image_size", 1e9, "preprocessing.image_size is 1000000000.0, outside [32, 2048]"),
    ("preprocessing", "image_size", "128", "preprocessing.image_size is '128', not a whole number"),
    ("preprocessing", "image_size", 130, "preprocessing.image_size is 130, not a multiple of 4"),
    ("preprocessing", "margin", None, "preprocessing.margin is None, not a number"),
    ("network", "base_channels", float("nan"), "network.base_channels is nan, not a whole number"),
    ("network", "num_res_blocks", 10**6, "network.num_res_blocks is 1000000, outside [0, 64]"),
    (None, "healthy_index", True, "healthy_index is True, not a whole number"),
    ("localization", "smoothing_sigma", "2", "localization smoothing_sigma must be a finite number, got '2'"),
    ("localization", "smoothing_sigma", 1e9, "localization smoothing_sigma must be <= 64.0"),
    ("localization", "lung_gate", 1, "localization lung_gate must be true or false, got 1"),
    ("localization", "border_fraction", float("nan"), "border_fraction must be a finite number, got nan"),
    ("calibration", "threshold", [], "calibration threshold must be a finite number, got []"),
])
def test_a_card_value_of_the_wrong_type_or_size_is_refused_naming_the_card(tmp_path: Path, section: str | None,
                                                                           key: str, value: object,
                                                                           words: str) -> None:
    """An edited card with a string, a boolean, NaN or an absurd size raised TypeError, ValueError, IndexError or a
    failed allocation from deep inside the network or the map (some only on the first image); each is now refused
    when the model loads, naming the file and the setting."""
    path = make_tiny_model(tmp_path / "model.pt")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    (card.setdefault(section, {}) if section else card)[key] = value
    card_path.write_text(json.dumps(card))
    with pytest.raises((ModelError, ConfigurationError), match=re.escape(f"{path}: ") + ".*" + re.escape(words)):
        Predictor.from_path(path, device="cpu")


def test_default_model_path_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_tiny_model(tmp_path / "mine.pt")
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(path))
    assert default_model_path() == path
    assert Predictor.from_path(None).card["sha256"] == sha256_file(path)


@pytest.mark.slow
def test_calibrate_command_changes_localization_and_refits_the_threshold(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import healthy_manifest

    manifest, _ = healthy_manifest(tmp_path / "m.csv", 6)
    model = make_tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "recalibrated.pt"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                             "--manifest", str(manifest), "--out", str(out), "--no-progress",
                             "--set", "localization.difference=removed", "--set", "localization.lung_gate=true"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["localization"]["difference"] == "removed" and card["localization"]["lung_gate"] is True
    assert card["calibration"]["healthy_images"] == 6 and card["calibration"]["source_sha256"] == sha256_file(model)
    assert 0 < card["calibration"]["threshold"] <= 1 and "threshold" not in card["localization"]
    original, _, _ = load_model(model)
    copied, _, _ = load_model(out)
    assert all(torch.equal(original[k], copied[k]) for k in original)
    bad = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(model),
                          "--manifest", str(manifest), "--out", str(out), "--set", "image_size=64"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "localization" in bad.stderr
