"""Training through the MONAI workflow: exact resume, Ctrl-C, torchrun, TensorBoard, export."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import require_shared_data

from PilletGANLib.engine import load_config, train
from PilletGANLib.inference import Predictor

TINY = ["image_size=64", "batch_size=4", "base_channels=8", "num_res_blocks=1", "disc_base_channels=8",
        "n_critic=2", "num_workers=0", "log_interval=1", "ema_decay=0.9"]


def class_manifest(folder: Path, root: Path, per_class: int = 12, with_val: bool = True) -> Path:
    """A manifest of the 64 px images of the NIH-layout ``root``: ``per_class`` of each label, a few held out."""
    rows = []
    for label, sub in (("healthy", "0_normal"), ("disease", "1_abnormal")):
        files = sorted((root / "train" / sub).glob("*.png"))[:per_class]
        for index, path in enumerate(files):
            split = "val" if with_val and index % 4 == 0 else "train"
            rows.append([str(path), label, path.name.split("_")[0], split])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "patient_id", "split"])
        writer.writerows(rows)
    return manifest


def _generator_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["generator"]


@pytest.mark.slow
def test_resume_is_exact(tmp_path: Path, phantom_folders) -> None:
    manifest = class_manifest(tmp_path, phantom_folders.root, with_val=False)
    # the learning-rate decay follows the run's total, so the schedule is held constant here
    settings = [*TINY, "checkpoint_interval=4", "val_interval=100", "lr_decay_start=1.0"]
    train(manifest, tmp_path / "straight", load_config(overrides=[*settings, "iterations=8"]), progress=False)
    train(manifest, tmp_path / "split", load_config(overrides=[*settings, "iterations=4"]), progress=False)
    resumed = json.loads((tmp_path / "split" / "config.json").read_text())
    train(manifest, tmp_path / "split", load_config(overrides=["iterations=8"], base=resumed), resume=True,
          progress=False)
    straight = _generator_state(tmp_path / "straight" / "checkpoint_final.pt")
    split = _generator_state(tmp_path / "split" / "checkpoint_final.pt")
    assert torch.load(tmp_path / "split" / "checkpoint_final.pt", weights_only=True)["trainer"]["iteration"] == 8
    for name, tensor in straight.items():
        assert (tensor - split[name]).abs().max() < 1e-6, name
    assert any((tensor != 0).any() for tensor in straight.values())


@pytest.mark.slow
def test_training_exports_a_calibrated_model_and_tensorboard(tmp_path: Path, phantom_folders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    manifest = class_manifest(tmp_path, phantom_folders.root)
    run_dir = tmp_path / "run"
    summary = train(manifest, run_dir, load_config(overrides=[*TINY, "iterations=6", "val_interval=3",
                                                              "checkpoint_interval=3", "image_log_interval=3",
                                                              "batch_scaling=sqrt", "reference_batch=16",
                                                              "lr_decay_start=1.0"]),
                    progress=False)
    card = json.loads((run_dir / "model.json").read_text())
    assert card["network"]["base_channels"] == 8 and card["calibration"]["threshold"] > 0
    # a batch of 4 against a reference of 16: the learning rates halved, the EMA decay to the power 1/4
    assert card["training"]["batch_scaled"] == {"ratio": 0.25, "lr_g": 5e-5, "lr_d": 5e-5, "ema_decay": 0.9 ** 0.25}
    optimizers = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)
    assert [g["lr"] for g in optimizers["g_optimizer"]["param_groups"]] == [5e-5]
    assert [g["lr"] for g in optimizers["d_optimizer"]["param_groups"]] == [5e-5]
    assert card["training"]["calibration"]["healthy_images"] == 3
    assert set(summary["validation"]) == {"ema", "generator"}
    assert (run_dir / "best.pt").is_file()
    predictor = Predictor.from_path(run_dir / "model.pt")
    assert predictor.image_size == 64
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"D/adversarial", "D/gradient_penalty", "G/cycle", "G/identity", "G/attention_sparsity"} <= scalars
    assert "detection_auc" in scalars
    images = events.Images("images/input_healed_difference_attention")
    attention_maps = len(predictor.translator.generator.attention_at)  # res1, up1, up2 with one residual block
    assert attention_maps == 3
    assert images and images[-1].height == 64 * (3 + attention_maps)  # input, healed, difference, attention
    assert len(events.Scalars("D/adversarial")) == 6


@pytest.mark.slow
def test_localization_only_images_train_only_when_asked_and_never_validate(tmp_path: Path, phantom_folders) -> None:
    manifest = class_manifest(tmp_path, phantom_folders.root)
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    boxed = [r for r in rows if r["label"] == "disease"][:4]  # the first is a validation image, three train
    for row in rows:
        row.update(x="", y="", width="", height="", localization_only="")
    for row in boxed:
        row.update(x="8", y="8", width="20", height="20", localization_only="1")
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = [*TINY, "iterations=2", "val_interval=100"]
    train(manifest, tmp_path / "kept", load_config(overrides=[*settings, "train_localization_only=true"]), progress=False)
    train(manifest, tmp_path / "left", load_config(overrides=settings), progress=False)
    kept, left = (json.loads((tmp_path / name / "model.json").read_text())["training"]["data"] for name in ("kept", "left"))
    assert (kept["train_localization_only"], left["train_localization_only"]) == (3, 0)
    assert kept["train_images"] == left["train_images"] + 3
    assert kept["train_disease"] == left["train_disease"] + 3
    assert kept["validation_images"] == left["validation_images"] == 5


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path: Path, phantom_folders) -> None:
    manifest = class_manifest(tmp_path, phantom_folders.root, with_val=False)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "PilletGANLib.cli", "train", "--manifest", str(manifest), "--out", str(run_dir),
               "--no-progress", *[a for s in [*TINY, "iterations=100000", "checkpoint_interval=100000"]
                                  for a in ("--set", s)]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    log = []
    for line in process.stdout:
        log.append(line)
        if "Epoch[1] Complete" in line or "Iteration: 12" in line or time.time() > deadline:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    final = run_dir / "checkpoint_final.pt"
    assert final.is_file(), "".join(log[-20:])
    assert process.returncode == 130 and "--resume continues from checkpoint_final.pt" in rest, rest[-2000:]
    stopped_at = torch.load(final, weights_only=True)["trainer"]["iteration"]
    assert 0 < stopped_at < 100000
    summary = train(manifest, run_dir, load_config(overrides=[*TINY, f"iterations={stopped_at + 4}"]), resume=True,
                    progress=False)
    assert summary["iterations"] == stopped_at + 4


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path, phantom_folders) -> None:
    manifest = class_manifest(tmp_path, phantom_folders.root, with_val=False)
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               "-m", "PilletGANLib.cli", "train", "--manifest", str(manifest), "--out", str(run_dir), "--no-progress",
               *[a for s in [*TINY, "iterations=4", "checkpoint_interval=4"] for a in ("--set", s)]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoints = sorted(p.name for p in run_dir.glob("checkpoint*.pt"))
    assert checkpoints == ["checkpoint_final.pt", "checkpoint_iteration=4.pt"]
    card = json.loads((run_dir / "model.json").read_text())
    assert card["training"]["world_size"] == 2


LEARNING = ["image_size=64", "batch_size=16", "base_channels=8", "num_res_blocks=2", "disc_base_channels=8",
            "disc_layers=4", "attention=none", "n_critic=1", "lr_g=0.0003", "lr_d=0.0003", "lambda_cls=5",
            "augment=false", "ema_decay=0", "lr_decay_start=1.0", "num_workers=0", "val_interval=100000",
            "checkpoint_interval=100000", "localization.difference=removed"]


def _pixel_auroc(predictor: Predictor, records) -> float:
    from PilletGANLib import load_cxr
    from PilletGANLib.metrics import pixel_auroc

    maps, masks = [], []
    for record in records:
        result = predictor.predict_path(record.image)
        maps.append(result.difference)  # the gated, smoothed lesion map before scaling to [0, 1]
        masks.append(load_cxr(record.mask)[0] > 0)
    return pixel_auroc(maps, masks)


@pytest.mark.slow
def test_learning_is_real_on_semi_synthetic_opacities(tmp_path: Path, one_thread) -> None:
    """Trained on real NIH normals with inserted opacities (semi-synthetic), the lesion map finds them."""
    from PilletGANLib.data import build_folder_manifest, read_manifest, write_synthetic_dataset
    from PilletGANLib.networks import PilletGenerator

    normals = [r for r in build_folder_manifest(require_shared_data("nih1000_64px")) if not r.is_disease]
    write_synthetic_dataset(normals, tmp_path / "data", size=64, fraction_disease=0.5, seed=0, val_fraction=0.25,
                            opacity_options={"density_range": (0.6, 0.9), "area_range": (0.05, 0.2)}, progress=False)
    manifest = tmp_path / "data" / "manifest.csv"
    held_out = [r for r in read_manifest(manifest) if r.split == "val" and r.is_disease]
    assert len(held_out) >= 20
    config = load_config(overrides=[*LEARNING, "iterations=400"])
    train(manifest, tmp_path / "run", config, progress=False)
    trained = _pixel_auroc(Predictor.from_path(tmp_path / "run" / "model.pt"), held_out)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    torch.manual_seed(config.seed)
    untrained = _pixel_auroc(Predictor(PilletGenerator(**card["network"]), card), held_out)
    # One thread, 400 iterations: 0.834 in 150 s on the 2-core development machine. CI once measured 0.790 (600
    # iterations, default threads); the bar leaves room for CPUs whose kernels round differently while demanding far
    # more than the untrained network's 0.53.
    assert trained >= 0.75, f"pixel AUROC {trained:.3f} after training (untrained {untrained:.3f})"
    assert trained - untrained >= 0.15, f"trained {trained:.3f} is not clearly above untrained {untrained:.3f}"


def test_first_ctrl_c_stops_after_the_iteration_and_the_second_at_once() -> None:
    from ignite.engine import Engine

    from PilletGANLib.engine.handlers import StopOnInterrupt

    def step(engine: Engine, batch: int) -> None:
        if engine.state.iteration in (3, 5):
            os.kill(os.getpid(), signal.SIGINT)

    engine = Engine(step)
    before = signal.getsignal(signal.SIGINT)
    with StopOnInterrupt(engine) as interrupt:
        engine.run(range(10), max_epochs=2)
    assert interrupt.requested and engine.state.iteration == 3
    assert signal.getsignal(signal.SIGINT) is before
    engine = Engine(step)
    with pytest.raises(KeyboardInterrupt), StopOnInterrupt(engine) as interrupt:
        interrupt.requested = True  # as after a first Ctrl-C
        engine.run(range(10), max_epochs=1)
    assert engine.state.iteration == 3 and signal.getsignal(signal.SIGINT) is before
