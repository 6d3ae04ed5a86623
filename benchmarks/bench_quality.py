"""Localization quality in one command: PILLET-GAN vs the Fixed-Point GAN baseline vs the floors, as JSON.

Runs ``pilletgan evaluate`` (the same harness, the same code for every map) on a manifest split for the
model (default: the shipped one), the baseline (a ``none`` model trained with the same data and budget;
default: the shipped ``baseline_fixed_point_gan.pt`` beside the shipped model) and the floors (random
map, two-lung prior, and the model's own opacity-location prior alone when its card uses one), then
prints the headline metrics of each, each model against its own location prior alone (``vs_model_prior``)
and PILLET-GAN against the baseline image by image (``pillet_gan_vs_fixed_point_gan``: differences with paired
bootstrap intervals and, for the pointing game, the exact McNemar test; see
:mod:`PilletGANLib.evaluation.paired`). With ``--train``, both models are first trained with ``pilletgan train``,
the ``--config`` file and the given ``--set`` overrides (a trained model's card has no learned prior: add one with
``pilletgan model calibrate``, as the model card shows).

    python benchmarks/bench_quality.py --manifest siim.csv --split val --out quality/   # the shipped pair
    python benchmarks/bench_quality.py --manifest siim.csv --split val \\
        --model runs/lta/model.pt --baseline runs/none/model.pt --out quality/
    python benchmarks/bench_quality.py --manifest siim.csv --split val --train --out quality/ \\
        --config Resources/training/siim_cpu64.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from PilletGANLib.evaluation import paired_comparison, read_per_image

#: The Fixed-Point GAN shipped beside the default model (see the model card).
SHIPPED_BASELINE = "baseline_fixed_point_gan.pt"
HEADLINE = ("detection_auc", "pointing_game", "dice", "dice_top15", "iou", "pixel_auroc", "rsna_map")


def pilletgan(*args: str) -> None:
    """Run a ``pilletgan`` command; its own output goes to stderr so that stdout holds only this script's JSON."""
    subprocess.run([sys.executable, "-m", "PilletGANLib.cli", *args], check=True, stdout=sys.stderr)


def headline(metrics: dict) -> dict:
    return {key: metrics.get(key) for key in HEADLINE}


def shipped_baseline() -> Path | None:
    """The shipped Fixed-Point GAN beside the default model, or None when it is not installed."""
    from PilletGANLib.errors import ModelError
    from PilletGANLib.model_store import default_model_path

    try:
        path = default_model_path().with_name(SHIPPED_BASELINE)
    except ModelError:
        return None
    return path if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="PILLET-GAN model (default: the shipped model)")
    parser.add_argument("--baseline", type=Path, help="Fixed-Point GAN model trained with the same budget "
                        f"(default: the shipped {SHIPPED_BASELINE})")
    parser.add_argument("--train", action="store_true", help="train both variants first (into OUT/runs)")
    parser.add_argument("--config", type=Path, help="training settings file with --train")
    parser.add_argument("--set", action="append", default=[], help="training overrides with --train")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    models: dict[str, Path | None] = {"pillet_gan": args.model, "fixed_point_gan": args.baseline or shipped_baseline()}
    if args.train:
        for name, attention in (("pillet_gan", "lta"), ("fixed_point_gan", "none")):
            run_dir = args.out / "runs" / name
            sets = [a for s in [*args.set, f"attention={attention}"] for a in ("--set", s)]
            config = ["--config", str(args.config)] if args.config else []
            pilletgan("train", "--manifest", str(args.manifest), "--out", str(run_dir), "--no-progress", *config, *sets)
            models[name] = run_dir / "model.pt"

    results: dict[str, dict] = {}
    floors: dict = {}
    for name, model in models.items():
        if name == "fixed_point_gan" and model is None:
            continue
        report = args.out / name
        command = ["evaluate", "--manifest", str(args.manifest), "--split", args.split, "--out", str(report),
                   "--device", args.device, "--no-progress"]
        if model is not None:
            command += ["--model", str(model)]
        pilletgan(*command)
        metrics = json.loads((report / "metrics.json").read_text())
        results[name] = {**headline(metrics), "model": metrics.get("model"), "counts": metrics.get("counts"),
                         "vs_model_prior": metrics.get("vs_model_prior")}
        floors = {k: headline(v) for k, v in (metrics.get("floors") or {}).items()}
    comparison = None
    if "fixed_point_gan" in results:
        comparison = paired_comparison(read_per_image(args.out / "pillet_gan" / "per_image.csv"),
                                       read_per_image(args.out / "fixed_point_gan" / "per_image.csv"))
    print(json.dumps({"benchmark": "quality", "manifest": str(args.manifest), "split": args.split,
                      "models": results, "floors": floors, "pillet_gan_vs_fixed_point_gan": comparison}, indent=2))


if __name__ == "__main__":
    main()
