"""The MONAI bundle checked with the model zoo's own tools, offline.

``verify_metadata`` against the bundled schema copy (``Testing/data/bundle_meta_schema.json``), ``monai.bundle.load``
from another working directory for the train and inference workflow types, ``verify_net_in_out`` and the scripted
``ckpt_export`` (MONAI's default, no ``--use_trace``) of the shipped model, ``download_large_files`` against the
weights in the bundle, and ``ConfigWorkflow(...).check_properties()`` for training, evaluation and inference on
test-made images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT
from monai.bundle import ConfigWorkflow, verify_metadata
from monai.bundle.scripts import download_large_files
from PIL import Image

from PilletGANLib import __version__
from PilletGANLib.data import ManifestRecord, write_manifest
from PilletGANLib.model_store import load_model, sha256_file
from PilletGANLib.networks import GeneratorEnsemble, HealthyTranslator, PilletGenerator

BUNDLE = REPO_ROOT / "Resources" / "bundle" / "PilletGAN_CXR"
CONFIGS = BUNDLE / "configs"
MODEL = BUNDLE / "models" / "model.pt"
SCHEMA = REPO_ROOT / "Testing" / "data" / "bundle_meta_schema.json"


def run_python(code: str, cwd: Path) -> str:
    """Run ``python -c code`` in ``cwd``; its stdout."""
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def bundle_cli(*args: str) -> None:
    """``python -m monai.bundle ARGS`` in the bundle folder, as model-zoo CI runs it."""
    result = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=BUNDLE, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def write_images(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` test-made 48 x 40 greyscale PNG radiographs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"p{seed}{index:02d}_0.png"
        Image.fromarray(rng.integers(0, 255, (48, 40), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.filterwarnings("ignore:No hash value provided")
def test_metadata_passes_verify_metadata_against_the_bundled_schema(tmp_path: Path) -> None:
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    # the schema file exists, so verify_metadata does not download (no hash given: the copy is used as it is)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))
    broken = dict(metadata)
    del broken["network_data_format"]
    (tmp_path / "metadata.json").write_text(json.dumps(broken))
    with pytest.raises(Exception, match="network_data_format"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(SCHEMA))
    # the custom code comes from a plain `pip install` of this repository: its distribution is 'pilletgan'
    assert metadata["required_packages_version"]["pilletgan"] == __version__
    assert 'name="pilletgan"' in (REPO_ROOT / "setup.py").read_text()


def test_large_files_list_the_weights_with_their_sha256() -> None:
    entries = yaml.safe_load((BUNDLE / "large_files.yml").read_text())["large_files"]
    listed = {entry["path"]: entry for entry in entries}
    assert set(listed) == {f"models/{p.name}" for p in (BUNDLE / "models").glob("*.pt")}
    for path, entry in listed.items():
        actual = sha256_file(BUNDLE / path)
        assert entry["hash_type"] == "sha256" and entry["hash_val"] == actual, \
            f"large_files.yml: {path} has SHA-256 {actual}; update its hash_val"
        card = json.loads((BUNDLE / path).with_suffix(".json").read_text())
        assert card["sha256"] == actual
    download_large_files(bundle_path=str(BUNDLE))  # every file is there with its hash: nothing is downloaded


@pytest.mark.slow
def test_load_gives_the_shipped_weights_from_another_directory(tmp_path: Path) -> None:
    """``monai.bundle.load`` builds ``network_def`` from the bundle's own model card, whatever the working directory."""
    code = (
        "import monai.bundle as b, torch\n"
        f"for kind in ('train', 'inference'):\n"
        f"    net = b.load('{BUNDLE.name}', bundle_dir={str(BUNDLE.parent)!r}, workflow_type=kind, device='cpu')\n"
        f"    torch.save(net.state_dict(), kind + '.pt')\n"
        "    print('LOADED', kind, type(net).__name__)\n"
    )
    out = [line.split()[1:] for line in run_python(code, tmp_path).splitlines() if line.startswith("LOADED ")]
    assert out == [["train", "HealthyTranslator"], ["inference", "HealthyTranslator"]]
    state, _, _ = load_model(MODEL)
    for kind in ("train", "inference"):
        loaded = torch.load(tmp_path / f"{kind}.pt", weights_only=True)
        assert set(loaded) == set(state), kind
        assert all(torch.equal(loaded[key], value) for key, value in state.items()), kind
    assert not (tmp_path / "eval").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_scripted_export_of_the_shipped_model_matches_eager(tmp_path: Path) -> None:
    common = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    bundle_cli("verify_net_in_out", "network_def", *common)
    bundle_cli("ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"), *common)
    state, card, _ = load_model(MODEL)
    network = HealthyTranslator.from_card(card).eval()
    network.load_state_dict(state)
    extra = {"metadata.json": ""}
    scripted = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    assert isinstance(scripted, torch.jit.ScriptModule) and not isinstance(scripted, torch.jit.TopLevelTracedModule)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    with torch.no_grad():
        for shape in ((2, 1, 128, 128), (1, 1, 96, 64)):  # scripting keeps batch and image size free
            x = torch.rand(shape) * 2 - 1
            assert (scripted(x) - network(x)).abs().max() < 1e-5, shape


@pytest.mark.parametrize("attention, fusion", [("lta", "add"), ("lta", "concat"), ("none", "add")])
def test_every_generator_variant_scripts(attention: str, fusion: str) -> None:
    torch.manual_seed(0)
    members = [PilletGenerator(base_channels=4, num_res_blocks=2, attention=attention, fusion=fusion,
                               output="clamp_residual") for _ in range(2)]
    for network in (HealthyTranslator(members[0]), HealthyTranslator(GeneratorEnsemble(members))):
        network.eval()
        scripted = torch.jit.script(network)
        x = torch.rand(2, 1, 32, 24) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(scripted(x), network(x), atol=1e-6)
    with pytest.raises(Exception, match="multiples of 4"):
        scripted(torch.zeros(1, 1, 30, 24))


@pytest.mark.slow
def test_check_properties_of_train_evaluate_and_inference(tmp_path: Path) -> None:
    records = []
    for label, seed in (("healthy", 1), ("disease", 2)):
        for index, path in enumerate(write_images(tmp_path / label, 6, seed)):
            records.append(ManifestRecord(image=path, label=label, patient_id=path.stem,
                                          split="val" if index % 3 == 0 else "train"))
    manifest = write_manifest(records, tmp_path / "manifest.csv")
    common = {"meta_file": str(CONFIGS / "metadata.json"), "logging_file": False}
    cases = {
        "train": ("train.json", {"manifest": str(manifest), "output_dir": str(tmp_path / "train"),
                                 "settings#num_workers": 0, "settings#image_size": 64}),
        "eval": ("evaluate.json", {"manifest": str(manifest), "split": "val", "output_dir": str(tmp_path / "eval")}),
        "infer": ("inference.json", {"dataset_dir": str(tmp_path / "healthy"), "output_dir": str(tmp_path / "infer")}),
    }
    for kind, (config, override) in cases.items():
        workflow = ConfigWorkflow(config_file=str(CONFIGS / config), workflow_type=kind, **common, **override)
        workflow.initialize()
        assert workflow.check_properties() == [], kind
        assert Path(workflow.bundle_root) == BUNDLE, kind  # found from the config file, not the working directory
        assert isinstance(workflow.network_def, HealthyTranslator), kind
