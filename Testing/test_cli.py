"""The ``pilletgan`` command itself: grouped verbs, a parser that loads nothing heavy, moved verbs, model export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, make_tiny_model

from PilletGANLib.cli import COMMANDS, MOVED, build_parser, main

HEAVY = ("torch", "monai", "pydicom", "highdicom", "SimpleITK", "nibabel", "ignite")


@pytest.mark.slow
def test_building_the_parser_imports_no_heavy_library() -> None:
    """``pilletgan --help`` (every command's parser) starts without torch, MONAI or the DICOM stack."""
    code = ("import sys; from PilletGANLib.cli import build_parser; build_parser(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.stdout.strip() == "[]"


def test_user_verbs_are_top_level_and_the_rest_grouped(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"inspect", "infer", "evaluate", "compare", "batch", "demo", "train"} <= set(COMMANDS)
    parser = build_parser()
    for argv in (["model", "calibrate", "--manifest", "m.csv", "--out", "x.pt"], ["model", "ensemble", "--model", "a.pt",
                 "--model", "b.pt", "--out", "e.pt"], ["model", "export", "--out", "m.onnx"],
                 ["prior", "lung-fields", "--siim", "s", "--out", "l.pt"],
                 ["prior", "opacity-template", "--siim", "s", "--out", "o.pt"],
                 ["data", "manifest", "folders", "src", "--out", "m.csv"]):
        assert callable(parser.parse_args(argv).func), argv
    for old, new in MOVED.items():
        assert main([old, "--help"]) == 2
        assert f"pilletgan {old} is now pilletgan {new}" in capsys.readouterr().err
        assert new.split()[0] in COMMANDS


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "--manifest", "m.csv", "--out", "o", "--seed", "-1"], "--seed: must be at least 0, got -1"),
    (["compare", "a", "b", "--seed", "-3"], "--seed: must be at least 0, got -3"),
    (["demo", "--out", "d", "--seed", "-1"], "--seed: must be at least 0"),
    (["data", "manifest", "folders", "src", "--out", "m.csv", "--seed", "-1"], "--seed: must be at least 0"),
    (["model", "calibrate", "--manifest", "m.csv", "--out", "x.pt", "--percentile", "nan"],
     "--percentile: must lie within [0, 100], got nan"),
    (["infer", "x.png", "--out", "o", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["infer", "x.png", "--out", "o", "--workers", "-1"], "--workers: must be at least 0, got -1"),
    (["batch", "in", "--out", "o", "--threshold", "1e9"], "--threshold: must lie within [0, 1], got 1e9"),
    (["infer", "x.png", "--out", "o", "--threshold", "-0.5"], "--threshold: must lie within [0, 1]"),
    (["pacs", "--url", "http://127.0.0.1:1/dicom-web", "--out", "o", "--timeout", "nan"],
     "--timeout: must be a finite number above 0, got nan"),
    (["listen", "--out", "o", "--max-retry", "inf"], "--max-retry: must be a finite number above 0, got inf"),
    (["model", "export", "--out", "m.onnx", "--image-size", "0"], "--image-size: must be at least 16, got 0"),
    (["evaluate", "--manifest", "m.csv", "--out", "o", "--sanity", "x"], "--sanity: expected a whole number, got 'x'"),
    (["prior", "lung-fields", "--siim", "s", "--out", "l.pt", "--epochs", "0"], "--epochs: must be at least 1, got 0"),
    (["prior", "opacity-template", "--siim", "s", "--out", "o.pt", "--grid", "100000"],
     "--grid: must be at most 1024, got 100000"),
    (["prior", "opacity-template", "--siim", "s", "--out", "o.pt", "--val-fold", "-1"], "--val-fold: must be at least 0"),
])
def test_numbers_no_run_can_use_are_refused_when_parsed(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                        message: str) -> None:
    """A negative seed ended evaluate, compare and demo in numpy's ValueError traceback, a percentile of NaN
    calibrate in numpy's, 0 epochs the lung-field training after its data were read, a template grid of 100,000 in a
    74 GB allocation; infer ran with a batch of 0 and infer and batch with thresholds of -1 and 1e9."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_shared_split_and_backend_names_are_the_library_s() -> None:
    from PilletGANLib.commands.arguments import BACKENDS as PARSER_BACKENDS
    from PilletGANLib.commands.arguments import SPLITS as PARSER_SPLITS
    from PilletGANLib.commands.prior import MAX_TEMPLATE_GRID
    from PilletGANLib.data.manifest import SPLITS
    from PilletGANLib.inference.backends import BACKENDS
    from PilletGANLib.priors.opacity_template import MAX_GRID

    assert PARSER_SPLITS == SPLITS and PARSER_BACKENDS == BACKENDS and MAX_TEMPLATE_GRID == MAX_GRID


@pytest.mark.slow
def test_model_export_writes_an_onnx_and_a_torchscript_file_of_the_translator(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    from PilletGANLib.model_store import load_model
    from PilletGANLib.networks import HealthyTranslator

    model = make_tiny_model(tmp_path / "tiny.pt", attention="lta")
    state, card, _ = load_model(model)
    translator = HealthyTranslator.from_card(card)
    translator.load_state_dict(state)
    x = torch.rand(2, 1, 48, 40) * 2 - 1
    with torch.no_grad():
        expected = translator.eval()(x).numpy()

    assert main(["model", "export", "--model", str(model), "--out", str(tmp_path / "tiny.onnx")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "onnx" and summary["model_sha256"] == card["sha256"]
    session = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    (pred,) = session.run(["pred"], {"image": x.numpy()})
    assert np.abs(pred - expected).max() < 1e-4

    assert main(["model", "export", "--model", str(model), "--out", str(tmp_path / "tiny.ts"), "--image-size", "32"]) == 0
    scripted = torch.jit.load(str(tmp_path / "tiny.ts"))
    with torch.no_grad():
        assert np.abs(scripted(x).numpy() - expected).max() < 1e-5

    assert main(["model", "export", "--model", str(model), "--out", str(tmp_path / "tiny.h5")]) == 2
    assert "--out must end in one of" in capsys.readouterr().err
    assert main(["model", "export", "--model", str(model), "--out", str(tmp_path / "x.onnx"), "--image-size", "30"]) == 2
    assert not (tmp_path / "x.onnx").exists()
