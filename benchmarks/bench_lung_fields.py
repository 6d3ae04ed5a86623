"""The learned lung-field model on its own: box IoU on held-out SIIM folds, and its two-lung prior as a map.

Two figures, as JSON:

- ``box_iou``: the lung-field model's boxes against the SIIM lung-field boxes of the validation folds
  (``--siim``; the shipped model was trained on folds 0-2);
- ``prior_alone``: the two-lung drawing of the predicted box (what ``localization.lung_prior`` adds to a
  lesion map), written as maps for a manifest split (``--manifest``) and scored by ``pilletgan evaluate
  --maps``, so a model's map can be compared with what the lung-field prior does without the GAN.

    python benchmarks/bench_lung_fields.py --siim ../shared/data/siim_covid_256 \\
        --manifest siim.csv --split val --out lung_fields_bench/
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def box_iou_on_folds(estimator, siim: Path, folds: list[int], margin: float) -> dict:
    from PilletGANLib.priors.siim import read_siim_lung_fields
    from PilletGANLib.priors.training import box_iou, lung_field_tensors

    records = [r for r in read_siim_lung_fields(siim) if r.fold in folds]
    images, boxes = lung_field_tensors(records, margin)
    iou = box_iou(estimator.boxes(images), boxes)
    return {"images": len(records), "folds": folds, "mean": float(iou.mean()), "median": float(iou.median()),
            "p10": float(iou.quantile(0.1))}


def write_prior_maps(estimator, manifest: Path, split: str, size: int, margin: float, out: Path) -> int:
    from PilletGANLib.data.manifest import read_manifest, select_split
    from PilletGANLib.reading import load_cxr
    from PilletGANLib.transforms.pipeline import prepare_image

    out.mkdir(parents=True, exist_ok=True)
    records = select_split(read_manifest(manifest, check_files=True), split)
    for record in records:
        prepared = prepare_image(*load_cxr(record.image), size, margin)
        prior = estimator.prior(prepared.network_input[None])[0, 0].numpy()
        np.save(out / f"{record.key}.npy", prepared.geometry.map_to_source(prior).astype(np.float32))
    return len(records)


def main() -> None:
    from PilletGANLib.model_store import companion_path, default_model_path, read_card
    from PilletGANLib.priors import LungFieldEstimator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lung-fields", type=Path, help="lung-field model (default: the shipped model's)")
    parser.add_argument("--siim", type=Path, help="pre-resized SIIM folder: score box IoU on --folds")
    parser.add_argument("--folds", type=int, nargs="+", default=[3], help="held-out folds (default 3)")
    parser.add_argument("--manifest", type=Path, help="manifest whose --split is scored with the prior as the map")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, default=Path("lung_fields_bench"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = default_model_path()
    card = read_card(model)
    path = args.lung_fields or companion_path(card, "lung_fields", model)
    if path is None:
        parser.error("the shipped model names no lung-field model: pass --lung-fields")
    estimator = LungFieldEstimator.from_path(path)
    size = int(card["preprocessing"]["image_size"])
    margin = float(card["preprocessing"]["margin"])
    figures: dict = {"lung_fields": str(path), "network_grid": size}
    if args.siim:
        figures["box_iou"] = box_iou_on_folds(estimator, args.siim, args.folds, margin)
    if args.manifest:
        maps = args.out / "maps"
        figures["maps_written"] = write_prior_maps(estimator, args.manifest, args.split, size, margin, maps)
        subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "evaluate", "--manifest", str(args.manifest),
                        "--split", args.split, "--maps", str(maps), "--out", str(args.out / "eval"), "--no-progress"],
                       check=True)
        metrics = json.loads((args.out / "eval" / "metrics.json").read_text(encoding="utf-8"))
        keys = ("detection_auc", "pointing_game", "dice", "dice_top15", "pixel_auroc", "rsna_map")
        figures["prior_alone"] = {k: metrics.get(k) for k in keys}
        figures["floors"] = {name: {k: m.get(k) for k in keys} for name, m in metrics.get("floors", {}).items()}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
