"""Generator ensembles: the averaging module, combining model files, and every front door loading the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import healthy_nih_manifest, make_tiny_model

from PilletGANLib.bundle import load_weights
from PilletGANLib.cli import main
from PilletGANLib.errors import ConfigurationError, ModelError
from PilletGANLib.inference import Predictor
from PilletGANLib.inference.ensemble import combine_models
from PilletGANLib.model_store import load_model, read_card, save_model
from PilletGANLib.networks import (
    GeneratorEnsemble,
    HealthyTranslator,
    PilletGenerator,
    export_torchscript,
    generator_from_card,
)


def _lta_members(count: int) -> list[PilletGenerator]:
    members = []
    for seed in range(count):
        torch.manual_seed(seed)
        members.append(PilletGenerator(base_channels=8, num_res_blocks=1, attention="lta").eval())
    return members


@pytest.mark.slow
def test_ensemble_averages_its_members_healing_and_attention(tmp_path: Path) -> None:
    members = _lta_members(3)
    ensemble = GeneratorEnsemble(members).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    target = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        outputs = [m(x, target) for m in members]
        healed, attention = ensemble(x, target)
    torch.testing.assert_close(healed, sum(h for h, _ in outputs) / 3)
    assert len(attention) == len(outputs[0][1]) > 0
    for index, maps in enumerate(attention):
        torch.testing.assert_close(maps, sum(a[index] for _, a in outputs) / 3)
    assert not torch.allclose(healed, outputs[0][0])  # the members differ, so the average is not one of them
    with torch.no_grad():
        output = HealthyTranslator(ensemble)(x)
    torch.testing.assert_close(output[:, :1], healed)
    torch.testing.assert_close(output[:, 1:], (healed - x).abs())
    scripted = torch.jit.load(str(export_torchscript(HealthyTranslator(ensemble), tmp_path / "ensemble.ts", image_size=32)))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x)[:, :1], healed, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigurationError, match="at least one member"):
        GeneratorEnsemble([])
    with pytest.raises(ConfigurationError, match="numbers of domains"):
        GeneratorEnsemble([PilletGenerator(base_channels=8, num_res_blocks=1), PilletGenerator(base_channels=8,
                                                                                               num_res_blocks=1,
                                                                                               num_domains=3)])


@pytest.mark.slow
def test_combined_model_predicts_with_the_averaged_healing(tmp_path: Path) -> None:
    first = make_tiny_model(tmp_path / "a" / "first.pt", attention="lta", seed=0)
    second = make_tiny_model(tmp_path / "b" / "second.pt", attention="lta", seed=1)
    out = tmp_path / "ensemble" / "model.pt"
    card = combine_models([first, second], out)
    assert [m["source"] for m in card["ensemble"]] == [str(first), str(second)]
    assert [m["sha256"] for m in card["ensemble"]] == [read_card(first)["sha256"], read_card(second)["sha256"]]
    assert "not calibrated" in card["calibration"]["status"]
    state, saved_card, _ = load_model(out)  # the checksum covers the combined weights
    assert saved_card["ensemble"] == card["ensemble"] and len(state) == 2 * len(load_model(first)[0])

    network = generator_from_card(saved_card)
    assert isinstance(network, GeneratorEnsemble) and len(network.members) == 2
    predictor = Predictor.from_path(out, device="cpu")
    members = [Predictor.from_path(path, device="cpu") for path in (first, second)]
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    healed, _ = predictor.translate(x)
    torch.testing.assert_close(healed, (members[0].translate(x)[0] + members[1].translate(x)[0]) / 2)

    image = np.random.default_rng(0).random((40, 48)).astype(np.float32)
    result = predictor.predict_array(image)
    assert result.difference.shape == image.shape and np.isfinite(result.score)


def test_combining_refuses_members_that_do_not_fit_together(tmp_path: Path) -> None:
    first = make_tiny_model(tmp_path / "first.pt", attention="lta")
    with pytest.raises(ModelError, match="at least two models"):
        combine_models([first], tmp_path / "one.pt")
    other_size = make_tiny_model(tmp_path / "other_size.pt", attention="lta", image_size=64)
    with pytest.raises(ModelError, match="'preprocessing' differs") as error:
        combine_models([first, other_size], tmp_path / "bad.pt")
    assert "other_size.pt" in str(error.value)
    baseline = make_tiny_model(tmp_path / "baseline.pt", attention="none")
    with pytest.raises(ModelError, match="'network' differs"):
        combine_models([first, baseline], tmp_path / "bad.pt")
    pair = tmp_path / "pair.pt"
    combine_models([first, make_tiny_model(tmp_path / "second.pt", attention="lta", seed=3)], pair)
    with pytest.raises(ModelError, match="already an ensemble"):
        combine_models([first, pair], tmp_path / "nested.pt")
    assert not (tmp_path / "bad.pt").exists() and not (tmp_path / "nested.pt").exists()


def test_a_card_whose_ensemble_does_not_fit_its_weights_is_refused(tmp_path: Path) -> None:
    first = make_tiny_model(tmp_path / "first.pt", attention="lta")
    state, card, _ = load_model(first)
    lying = save_model(state, {**{k: v for k, v in card.items() if k not in ("sha256", "weights_file", "format")},
                               "ensemble": [{"source": "a"}, {"source": "b"}]}, tmp_path / "lying.pt")
    with pytest.raises(ModelError, match="do not fit"):
        Predictor.from_path(lying, device="cpu")
    empty = save_model(state, {**{k: v for k, v in card.items() if k not in ("sha256", "weights_file", "format")},
                               "ensemble": []}, tmp_path / "empty.pt")
    with pytest.raises(ModelError, match="must list its member generators"):
        Predictor.from_path(empty, device="cpu")


@pytest.mark.slow
def test_bundle_network_of_an_ensemble_card_loads_the_ensemble_weights(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    combine_models([make_tiny_model(tmp_path / f"m{i}.pt", attention="lta", seed=i) for i in range(2)], out)
    network = HealthyTranslator.from_card(read_card(out))
    assert isinstance(network.generator, GeneratorEnsemble)
    load_weights(network, out)
    predictor = Predictor.from_path(out, device="cpu")
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        output = network.eval()(x)
    healed, _ = predictor.translate(x)
    torch.testing.assert_close(output[:, :1], healed)
    torch.testing.assert_close(output[:, 1:], (healed - x).abs())


@pytest.mark.slow
def test_ensemble_command_then_calibrate_gives_a_calibrated_ensemble(tmp_path: Path) -> None:
    manifest, images = healthy_nih_manifest(tmp_path / "m.csv", 4)
    members = [make_tiny_model(tmp_path / f"m{i}.pt", attention="lta", seed=i) for i in range(2)]
    raw = tmp_path / "raw" / "model.pt"
    assert main(["model", "ensemble", "--model", str(members[0]), "--model", str(members[1]), "--out", str(raw)]) == 0
    calibrated = tmp_path / "calibrated" / "model.pt"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "model", "calibrate", "--model", str(raw), "--manifest",
                             str(manifest), "--out", str(calibrated), "--no-progress"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(calibrated.with_suffix(".json").read_text())
    assert len(card["ensemble"]) == 2 and card["calibration"]["healthy_images"] == 4
    assert card["calibration"]["source_sha256"] == read_card(raw)["sha256"]
    prediction = Predictor.from_path(calibrated, device="cpu").predict_path(images[0])
    assert prediction.heatmap.shape == prediction.image.shape
    assert main(["model", "ensemble", "--model", str(members[0]), "--out", str(tmp_path / "single.pt")]) == 2
