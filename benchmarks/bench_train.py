"""Training throughput of the real ``pilletgan train`` path against the Fixed-Point GAN reference, as JSON.

Each project row is one call of :func:`PilletGANLib.engine.train` (manifest -> preprocessing cache ->
resident training set -> iterations -> export), timed by the run's own :class:`~PilletGANLib.engine.handlers.
Throughput` (images/s from the end of its ``WARMUP``-th iteration to the last iteration, every handler included; peak
memory). Rows:

- ``fpgan_size``: networks of the reference's size (64 base channels, 6 residual blocks, no attention;
  6-layer 64-channel critic; ``n_critic`` 5), at the reference's image size and batch;
- ``recipe``: the shipped recipe (``Resources/training/siim_gpu128.json`` on a GPU, ``siim_cpu64.json``
  on a CPU), at its own size and batch;
- ``reference``: the reference iteration (``reference_fpgan.py``) at the same size and batch, on one batch
  already on the device (no data loading at all: the project rows pay their data path, it does not); with
  ``--amp`` also ``reference_bf16``.

``ratio`` is a project row's images/s over the faster reference row's. The manifest is built from ``--manifest``,
else from ``../shared/data/siim_covid_256`` when present (``--images`` of them, half healthy, half disease), else
from synthetic phantom radiographs written to a temporary folder.

    python benchmarks/bench_train.py                                          # CPU: 64 px, batch 8
    python benchmarks/bench_train.py --size 256 --batch-size 16 --amp        # a GPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_networks import device_name
from PIL import Image
from reference_fpgan import ReferenceIteration

from PilletGANLib.data.manifest import ManifestRecord, read_manifest, write_manifest
from PilletGANLib.demo.phantom import box_of, make_phantom_radiograph
from PilletGANLib.engine import load_config, train
from PilletGANLib.engine.handlers import Throughput

RECIPES = Path(__file__).resolve().parent.parent / "Resources" / "training"
SIIM = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "siim_covid_256"


def siim_records(count: int, manifest: Path | None = None) -> list[ManifestRecord]:
    """``count`` SIIM training images (of ``manifest``, else of ``../shared/data``), half of each class (the first
    in the manifest's order)."""
    if manifest is not None:
        records = [r for r in read_manifest(manifest, check_files=True) if r.split in (None, "train")]
    else:
        from PilletGANLib.data.sources.siim import build_siim_covid_manifest

        records = build_siim_covid_manifest(SIIM, split_by="fold")
    healthy = [r for r in records if not r.is_disease][: count // 2]
    disease = [r for r in records if r.is_disease][: count // 2]
    return [ManifestRecord(r.image, r.label, r.patient_id, "train", r.boxes) for r in healthy + disease]


def phantom_records(count: int, folder: Path) -> list[ManifestRecord]:
    """``count`` synthetic 256 px radiographs, half with an opacity (their box as truth)."""
    records = []
    for index in range(count):
        phantom = make_phantom_radiograph((256, 256), opacity=index % 2 == 1, seed=index)
        path = folder / f"phantom_{index:04d}.png"
        pixels = phantom.pixels.astype(np.float64)
        Image.fromarray((255 * (pixels - pixels.min()) / max(np.ptp(pixels), 1)).astype(np.uint8)).save(path)
        box = box_of(phantom.opacity_mask) if index % 2 else None
        boxes = np.asarray([box], dtype=np.float64) if box else np.zeros((0, 4))
        records.append(ManifestRecord(path, "disease" if index % 2 else "healthy", f"p{index}", "train", boxes))
    return records


def top_kernels(profiler: torch.profiler.profile, device: torch.device, count: int = 15) -> list[dict]:
    """The ``count`` operators with the most self time on ``device`` (CUDA kernels' time on a GPU)."""
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(profiler.key_averages(), key=lambda e: getattr(e, attribute), reverse=True)[:count]
    total = sum(getattr(e, attribute) for e in profiler.key_averages()) or 1.0
    return [{"name": e.key[:80], "calls": e.count, "self_ms": round(getattr(e, attribute) / 1e3, 2),
             "share": round(getattr(e, attribute) / total, 3)} for e in events]


def run_project(name: str, manifest: Path, work: Path, settings: list[str], config_file: Path | None,
                iterations: int, profile: bool = False) -> dict:
    total = Throughput.WARMUP + iterations
    overrides = [*settings, f"iterations={total}", "max_minutes=0", "num_workers=0", f"log_interval={total}",
                 f"checkpoint_interval={10 * total}", f"image_log_interval={10 * total}"]
    config = load_config(config_file, overrides)
    start = time.perf_counter()
    if profile:  # the whole run, cache and export included: the iterations dominate it
        activities = [torch.profiler.ProfilerActivity.CPU]
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profiler:
            summary = train(manifest, work / name, config, progress=False)
        summary["throughput"]["top_operators"] = top_kernels(profiler, device)
    else:
        summary = train(manifest, work / name, config, progress=False)
    return {"name": name, "image_size": config.image_size, "batch_size": config.batch_size,
            "base_channels": config.base_channels, "num_res_blocks": config.num_res_blocks,
            "disc_base_channels": config.disc_base_channels, "disc_layers": config.disc_layers,
            "attention": config.attention, "n_critic": config.n_critic, "amp": config.amp,
            "channels_last": config.channels_last, "compile": config.compile, "resident_data": config.resident_data,
            **summary["throughput"], "wall_s_with_cache_and_export": round(time.perf_counter() - start, 1)}


def _synchronized_clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def run_reference(name: str, size: int, batch_size: int, bf16: bool, iterations: int, device: torch.device) -> dict:
    """The reference iteration, warmed up and timed like the project rows."""
    step = ReferenceIteration(size, batch_size, device, n_critic=5, bf16=bf16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(Throughput.WARMUP):
        step()
    begin = _synchronized_clock(device)
    for _ in range(iterations):
        step()
    seconds = _synchronized_clock(device) - begin
    peak = Throughput(batch_size, device).summary()["peak_memory_mb"]
    return {"name": name, "image_size": size, "batch_size": batch_size, "n_critic": 5, "amp": bf16,
            "images_per_s": round(iterations * batch_size / seconds, 3), "timed_iterations": iterations,
            "seconds": round(seconds, 3), "peak_memory_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu = torch.cuda.is_available()
    parser.add_argument("--size", type=int, default=256 if gpu else 64, help="image size of fpgan_size and the reference")
    parser.add_argument("--batch-size", type=int, default=16 if gpu else 8)
    parser.add_argument("--iterations", type=int, default=100 if gpu else 10, help="timed iterations per row")
    parser.add_argument("--images", type=int, default=512 if gpu else 64, help="training images in the manifest")
    parser.add_argument("--manifest", type=Path, help="take the training images from this manifest (default: "
                        "../shared/data/siim_covid_256, else synthetic phantoms)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (project rows and a second reference row)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator in the project rows")
    parser.add_argument("--profile", action="store_true", help="profile the project rows: their top operators by "
                        "device time (CUDA kernels on a GPU) in the JSON; the profiler slows the rows it times")
    parser.add_argument("--no-recipe", action="store_true", help="skip the shipped recipe's row")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more settings of the project rows")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if gpu else "cpu")
    common = [f"amp={args.amp}", f"channels_last={args.channels_last}", f"compile={args.compile}", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.manifest is not None or SIIM.is_dir():
            records, source = siim_records(args.images, args.manifest), str(args.manifest or SIIM)
        else:
            (work / "images").mkdir()
            records, source = phantom_records(args.images, work / "images"), "synthetic phantom radiographs"
        manifest = write_manifest(records, work / "manifest.csv")
        rows = [run_reference("reference", args.size, args.batch_size, False, args.iterations, device)]
        if args.amp:
            rows.append(run_reference("reference_bf16", args.size, args.batch_size, True, args.iterations, device))
        fpgan = [f"image_size={args.size}", f"batch_size={args.batch_size}", "attention=none", "base_channels=64",
                 "num_res_blocks=6", "disc_base_channels=64", "disc_layers=6", "n_critic=5", "edit_region=image"]
        rows.append(run_project("fpgan_size", manifest, work, [*fpgan, *common], None, args.iterations,
                                args.profile))
        if not args.no_recipe:
            recipe = RECIPES / ("siim_gpu128.json" if gpu else "siim_cpu64.json")
            rows.append(run_project("recipe", manifest, work, common, recipe, args.iterations, args.profile))
    best = max(r["images_per_s"] for r in rows if r["name"].startswith("reference"))
    for row in rows:
        row["ratio"] = round(row["images_per_s"] / best, 3) if row.get("images_per_s") else None
    print(json.dumps({"benchmark": "train", "device": device_name(device), "torch": torch.__version__,
                      "data": source, "images": len(records), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
