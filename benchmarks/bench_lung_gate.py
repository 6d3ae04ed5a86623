"""How much of the radiologists' opacity boxes each lung gate lets the lesion map see, as JSON.

The map is gated to lung fields estimated on the image, and with ``edit_region: lungs`` the generator
may only edit inside them, so box area outside the gate is out of the model's reach. For each disease
image of a manifest split, on the source grid: the fraction of its box area inside the gate
(``box_coverage``) and the gate's share of the image (``area``), for the rule-based hull widened by each
``--margins`` value (``localization.lung_margin``) and for the learned lung-field model's two-lung
drawing (the support of ``localization.lung_prior``).

    python benchmarks/bench_lung_gate.py --manifest siim.csv --split val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def coverage(gate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(fraction of truth inside gate, fraction of the image inside gate)``."""
    return float((gate & truth).sum() / truth.sum()), float(gate.mean())


def summarize(values: list[tuple[float, float]]) -> dict[str, float]:
    cover = np.array([v[0] for v in values])
    return {"box_coverage": float(cover.mean()), "box_coverage_median": float(np.median(cover)),
            "area": float(np.mean([v[1] for v in values]))}


def main() -> None:
    from PilletGANLib.data.manifest import read_manifest, select_split
    from PilletGANLib.evaluation.accumulator import truth_mask
    from PilletGANLib.model_store import companion_path, default_model_path, read_card
    from PilletGANLib.priors import LungFieldEstimator
    from PilletGANLib.reading import load_cxr
    from PilletGANLib.transforms.lungs import estimate_lung_mask, widen_lung_fields
    from PilletGANLib.transforms.pipeline import prepare_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.025, 0.05, 0.08])
    parser.add_argument("--lung-fields", type=Path, help="lung-field model (default: the shipped model's)")
    parser.add_argument("--limit", type=int, help="score only the first N disease images")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = default_model_path()
    card = read_card(model)
    size, margin = int(card["preprocessing"]["image_size"]), float(card["preprocessing"]["margin"])
    path = args.lung_fields or companion_path(card, "lung_fields", model)
    estimator = LungFieldEstimator.from_path(path) if path else None

    records = [r for r in select_split(read_manifest(args.manifest, check_files=True), args.split)
               if r.is_disease and len(r.boxes)][: args.limit]
    results: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        image, meta = load_cxr(record.image)
        prepared = prepare_image(image, meta, size, margin)
        truth = truth_mask(record, (prepared.geometry.rows, prepared.geometry.cols))
        hull = estimate_lung_mask(prepared.network_input[0].numpy(), hull=True)  # the gate lung_fields_gate widens
        gates = {f"hull_margin_{m:g}": widen_lung_fields(hull, m) for m in args.margins}
        if estimator is not None:
            learned = estimator.prior(prepared.network_input[None])[0, 0].numpy() > 0
            gates["learned_lung_fields"] = learned
            gates["hull_or_learned"] = learned | hull
        for name, gate in gates.items():
            source = prepared.geometry.map_to_source(gate.astype(np.float32)) >= 0.5
            results.setdefault(name, []).append(coverage(source, truth))
    figures = {"manifest": str(args.manifest), "split": args.split, "disease_images": len(records),
               "network_grid": size, "gates": {name: summarize(values) for name, values in results.items()}}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
