"""``pilletgan evaluate --manifest M.csv [--split test] --out DIR [--model PATH | --maps DIR] [--sanity N]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import (
    add_device_argument,
    add_manifest_arguments,
    add_network_run_arguments,
    add_progress_argument,
    whole_number,
)

#: Images of the sanity checks unless --sanity says otherwise (three predictions each).
DEFAULT_SANITY = 50


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model or saved maps (and the floor maps) on a manifest",
        description="Score PilletGAN (the shipped model unless --model; a classifier baseline's card is scored by its "
                    "Grad-CAM) or saved lesion maps (--maps) against the manifest's labels, boxes and masks, beside a "
                    "random map, a lung prior and the image's own grey levels scored by the same code, with "
                    "laterality (does the map pick the sick half of the image?) and, for a model, the sanity checks "
                    "of the map. Localization-only images of the manifest count for localization and laterality, "
                    "not for detection. Writes metrics.json, per_image.csv, ROC/FROC/overlay figures and index.html "
                    "to --out.")
    add_manifest_arguments(parser, None, "are scored (image, label, boxes, masks)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the report")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=None,
                        help="model weights (.pt with its card; a PilletGAN generator or a classifier baseline; "
                             "default: shipped model)")
    source.add_argument("--maps", type=Path, default=None,
                        help="folder of saved maps named by image stem (.npy, .nii.gz or 16-bit .png, source grid; "
                             "optional <stem>.json with 'score' and 'boxes') scored instead of a model")
    add_device_argument(parser)
    add_network_run_arguments(parser)
    parser.add_argument("--batch-size", type=whole_number(1), default=8, help="model only: images per forward pass (default: 8)")
    parser.add_argument("--sanity", type=whole_number(0), default=DEFAULT_SANITY, metavar="N",
                        help="model only: run the sanity checks (map of the grey-inverted image, map of the network "
                             "with randomized weights) on N images, disease first; three predictions per image, "
                             f"0 to skip (default {DEFAULT_SANITY})")
    parser.add_argument("--seed", type=whole_number(0), default=0,
                        help="seed of the sanity images, the weight randomization and the bootstrap (default 0)")
    parser.add_argument("--no-floors", action="store_true", help="do not score the floors (random map, lung prior, grey level)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..data.manifest import read_manifest, select_split
    from ..evaluation import SavedMaps, evaluate
    from ..evaluation.model import PredictorStream, predictor_from_path
    from ..evaluation.sanity import SANITY_NOT_FOR_MAPS, sanity_report

    records = select_split(read_manifest(args.manifest, check_files=True, localization_only=True), args.split)
    if args.maps is not None:
        predict = SavedMaps(args.maps)
        model_info = predict.info()
        sanity = {"available": False, "reason": SANITY_NOT_FOR_MAPS}
    else:
        predictor = predictor_from_path(args.model, device=args.device, batch_size=args.batch_size,
                                        backend=args.backend, bf16=args.bf16)
        sanity = None
        if args.sanity:
            sanity = sanity_report(predictor, records, args.sanity, seed=args.seed, randomization_seed=args.seed,
                                   progress=not args.no_progress)
        predict = PredictorStream(predictor, records)
        model_info = {"kind": "model", **predictor.model_info}
    data_info = {"manifest": str(args.manifest.resolve()), "split": args.split or "all"}
    metrics = evaluate(records, predict, args.out, model_info=model_info, data_info=data_info,
                       floors=not args.no_floors, progress=not args.no_progress, seed=args.seed, sanity=sanity)
    shown = ("detection_auc", "pointing_game", "dice", "dice_top15", "rsna_map", "laterality_mass", "laterality_peak")
    print(", ".join(f"{k} {'n/a' if metrics[k] is None else format(metrics[k], '.3f')}" for k in shown))
    laterality = metrics["laterality"]
    if laterality["images"]:
        print(f"laterality over {laterality['images']} unilateral images: always the commoner side "
              f"{laterality['majority_floor']:.3f}, a symmetric map 0.500")
    if sanity and sanity.get("available"):
        print(f"sanity on {sanity['images']} images: median Spearman with the grey-inverted image's map "
              f"{_number(sanity['inverted']['spearman_median'])}, with the randomized network's map "
              f"{_number(sanity['randomized']['spearman_median'])} ({sanity['seconds']:.0f} s)")
    print(f"report: {(args.out / 'index.html').resolve()}")
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
