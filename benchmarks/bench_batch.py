"""Batch throughput: ``run_batch`` end to end over a built export, against the model alone, printed as JSON.

Builds (in a temporary folder) an export of ``--n`` copies of the real radiographs in
../shared/data/dicom, each with new Study/Series/SOP Instance UIDs (three instances per series, two
series per study; pixels untouched, so JPEG and JPEG 2000 stay compressed), then:

- ``end_to_end_instances_per_s``: instances / wall time of ``run_batch`` (discovery, decoding in
  ``--workers`` processes, model, lesion maps back in the source grid, DICOM SEG, ``result.json``, reports)
  with a new predictor and an empty ONNX export cache (the ``onnxruntime`` backend exports the network);
  ``inference_phase_instances_per_s`` leaves discovery and the reports out;
- ``end_to_end_cached_instances_per_s``: the same run again into a new output folder with another new
  predictor, which finds its export in the cache (what a later ``pilletgan batch`` process does);
- ``model_only_images_per_s``: ``Predictor.predict_prepared`` on inputs already read and preprocessed
  (network + lesion maps, masks and boxes in the source grid), same device and batch size, timed after one untimed
  pass over the same inputs (a first pass is slower: memory touched for the first time);
- with ``--repeats R``, the cached run and the model-only timing alternate R times and the JSON gives
  each pair's ratio and the medians (``cached_over_model_only_median``): on a shared machine both
  rates drift with the load, and a ratio of two rates measured minutes apart drifts with them;
- ``network_only_images_per_s``: the generator's forward pass alone on the same inputs;
- ``decode_only_images_per_s``: reading and preprocessing the files in this one process (what the decoding
  workers share the CPU for);
- ``cores_busy_cached_each`` and ``cores_busy_model_only_each``: CPU seconds (this process and its finished worker
  processes) over wall seconds of each timed pass: a run that keeps every core busy can only gain by doing less.

``--threads N`` sets the model's intra-op threads (torch's and ONNX Runtime's; default: torch's, one per core). On
a CPU where the model's threads take every core, reading and writing can only take cores from the model; with fewer
threads than cores they run beside it, and the ratio shows how much of their work the pipeline hides.

Model: ``--model PATH``; else the shipped default model when installed; else a randomly initialised
generator of the default size (64 base channels, 6 residual blocks, LTA, 256 px) saved as a model file
(``model_source`` in the JSON says which: throughput does not depend on the weights).

    python benchmarks/bench_batch.py --n 24 --workers 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom
import torch
from bench_networks import device_name
from pydicom.uid import generate_uid

from PilletGANLib.batch import run_batch
from PilletGANLib.errors import ModelError
from PilletGANLib.inference import Predictor
from PilletGANLib.inference.onnx_cache import CACHE_ENV
from PilletGANLib.model_store import default_model_path, save_model
from PilletGANLib.networks import PilletGenerator
from PilletGANLib.reading import load_cxr
from PilletGANLib.transforms.pipeline import prepare_image

DICOM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def build_export(root: Path, n: int) -> list[Path]:
    """``n`` copies of the real radiographs with new UIDs, three per series and two series per study."""
    sources = [pydicom.dcmread(path) for path in sorted(DICOM_DIR.glob("*.dcm"))]
    written = []
    for index, ds in zip(range(n), itertools.cycle(sources)):
        if index % 6 == 0:
            study = generate_uid()
        if index % 3 == 0:
            series = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = root / f"study{index // 6:04d}" / f"series{index // 3:04d}" / f"IM{index:05d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return written


def choose_model(given: Path | None, folder: Path) -> tuple[Path, str]:
    if given is not None:
        return given, "given"
    try:
        return default_model_path(), "shipped default"
    except ModelError:
        torch.manual_seed(0)
        card = {"name": "random-init-default-size", "network": {},
                "preprocessing": {"image_size": 256, "margin": 1.0}}
        path = save_model(PilletGenerator().state_dict(), card, folder / "random_default.pt")
        return path, "random init (default-size generator, 256 px): no shipped model installed"


def images_per_second(step: Callable[[Sequence], object], items: Sequence, warmup: Sequence,
                      device: torch.device) -> tuple[float, float]:
    """``len(items)`` / seconds of ``step(items)``, after one ``step(warmup)``, and the cores it kept busy."""
    step(warmup)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu = time.perf_counter(), cpu_seconds()
    step(items)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return len(items) / wall, (cpu_seconds() - cpu) / wall


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its reaped children (the decoding workers)."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (resource.getrusage(resource.RUSAGE_SELF),
                                                              resource.getrusage(resource.RUSAGE_CHILDREN)))


def translate_all(predictor: Predictor, inputs: torch.Tensor) -> None:
    for start in range(0, len(inputs), predictor.batch_size):
        predictor.translate(inputs[start: start + predictor.batch_size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="instances in the export (default 24)")
    parser.add_argument("--model", type=Path, default=None, help="model .pt with its card (default: see above)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--full-resolution-decode", action="store_true",
                        help="read every pixel (default: reduced resolution where the Predictor allows it)")
    parser.add_argument("--heatmap-seg", action="store_true", help="also write FRACTIONAL heat-map SEGs")
    parser.add_argument("--png", action="store_true", help="also write overlay PNGs")
    parser.add_argument("--threads", type=int, default=None,
                        help="the model's intra-op threads (default: torch's default, one per core)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate the cached run and the model-only timing this many times (default 1)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if not DICOM_DIR.is_dir():
        raise SystemExit(f"real DICOM files not found at {DICOM_DIR} (../shared/data/dicom)")

    with tempfile.TemporaryDirectory(prefix="bench_batch_") as scratch:
        scratch = Path(scratch)
        files = build_export(scratch / "export", args.n)
        model, model_source = choose_model(args.model, scratch)
        os.environ[CACHE_ENV] = str(scratch / "cache")  # empty: the first run exports

        def timed_run(out: str) -> tuple[Predictor, object, float, float]:
            predictor = Predictor.from_path(model, device=args.device, bf16=args.bf16, batch_size=args.batch_size,
                                            num_workers=args.workers,
                                            reduced_resolution_decode=not args.full_resolution_decode)
            start, cpu = time.perf_counter(), cpu_seconds()
            summary = run_batch(scratch / "export", scratch / out, predictor, heatmap_seg=args.heatmap_seg,
                                png=args.png, progress=False)
            wall = time.perf_counter() - start
            return predictor, summary, wall, (cpu_seconds() - cpu) / wall

        predictor, summary, end_to_end_s, _ = timed_run("out")

        start = time.perf_counter()
        network_size = predictor.image_size if predictor.reduced_resolution_decode else None
        prepared = [prepare_image(*load_cxr(path, network_size), predictor.image_size, predictor.margin)
                    for path in files]
        decode_rate = len(files) / (time.perf_counter() - start)
        # the first pass over source-grid maps of this size pays for first-touch memory (here 10 against 16
        # images/s in the passes after it): the model-only rate is timed after one untimed pass over the same inputs
        warmup = prepared
        cached_rates, model_rates, cached_cores, model_cores = [], [], [], []
        for repeat in range(args.repeats):
            _, _, wall, cores = timed_run(f"out_cached{repeat}")
            cached_rates.append(args.n / wall)
            cached_cores.append(cores)
            rate, cores = images_per_second(predictor.predict_prepared, prepared, warmup, predictor.device)
            model_rates.append(rate)
            model_cores.append(cores)
        model_rate, cached_rate = model_rates[0], cached_rates[0]
        pair_ratios = [cached / model for cached, model in zip(cached_rates, model_rates, strict=True)]
        inputs = torch.stack([p.network_input for p in prepared])
        network_rate, _ = images_per_second(lambda x: translate_all(predictor, x), inputs, inputs[: args.batch_size],
                                            predictor.device)

    print(json.dumps({
        "benchmark": "batch",
        "device": device_name(predictor.device),
        "torch": torch.__version__,
        "n": args.n,
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "bf16": args.bf16,
        "reduced_resolution_decode": not args.full_resolution_decode,
        "image_size": predictor.image_size,
        "outputs": ["seg"] + ["heatmap_seg"] * args.heatmap_seg + ["overlay"] * args.png,
        "model_source": model_source,
        "model_sha256": predictor.card.get("sha256"),
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "backend": predictor.backend,
        "end_to_end_s": round(end_to_end_s, 3),
        "end_to_end_instances_per_s": round(args.n / end_to_end_s, 3),
        "inference_phase_instances_per_s": round(summary.timings["instances_per_s"] or 0.0, 3),
        "model_only_images_per_s": round(model_rate, 3),
        "network_only_images_per_s": round(network_rate, 3),
        "decode_only_images_per_s": round(decode_rate, 3),
        "end_to_end_over_model_only": round(args.n / end_to_end_s / model_rate, 3),
        "end_to_end_cached_instances_per_s": round(cached_rate, 3),
        "end_to_end_cached_over_model_only": round(cached_rate / model_rate, 3),
        "repeats": args.repeats,
        "cached_instances_per_s_each": [round(rate, 3) for rate in cached_rates],
        "model_only_images_per_s_each": [round(rate, 3) for rate in model_rates],
        "cached_over_model_only_each": [round(ratio, 3) for ratio in pair_ratios],
        "cached_over_model_only_median": round(statistics.median(pair_ratios), 3),
        "cores_busy_cached_each": [round(cores, 2) for cores in cached_cores],
        "cores_busy_model_only_each": [round(cores, 2) for cores in model_cores],
    }, indent=2))


if __name__ == "__main__":
    main()
