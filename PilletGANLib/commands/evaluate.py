"""``pilletgan evaluate --manifest M.csv [--split test] --out DIR [--model PATH | --maps DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.manifest import SPLITS, read_manifest, select_split
from ..errors import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model or saved maps (and the floor maps) on a manifest",
        description="Score PilletGAN (the shipped model unless --model) or saved lesion maps (--maps) against the "
                    "manifest's labels, boxes and masks, beside a random map and a lung prior scored by the same "
                    "code. Writes metrics.json, per_image.csv, ROC/FROC/overlay figures and index.html to --out.")
    parser.add_argument("--manifest", required=True, type=Path, help="manifest CSV (image, label, boxes, masks)")
    parser.add_argument("--split", choices=SPLITS, default=None, help="evaluate only this split (default: all images)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the report")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=None, help="model weights (.pt with its card; default: shipped model)")
    source.add_argument("--maps", type=Path, default=None,
                        help="folder of saved maps named by image stem (.npy, .nii.gz or 16-bit .png, source grid; "
                             "optional <stem>.json with 'score' and 'boxes') scored instead of a model")
    parser.add_argument("--device", default="auto", help="model only: auto, cpu, cuda, cuda:1, ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="model only: images per forward pass (default: 8)")
    parser.add_argument("--no-floors", action="store_true", help="do not score the random-map and lung-prior floors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..evaluation import SavedMaps, evaluate
    from ..evaluation.model import PredictorStream

    if args.batch_size < 1:
        raise ConfigurationError(f"--batch-size must be at least 1, got {args.batch_size}")
    records = select_split(read_manifest(args.manifest, check_files=True), args.split)
    if args.maps is not None:
        predict = SavedMaps(args.maps)
        model_info = predict.info()
    else:
        from ..inference import Predictor

        predictor = Predictor.from_path(args.model, device=args.device, batch_size=args.batch_size)
        predict = PredictorStream(predictor, records)
        model_info = {"kind": "model", **predictor.model_info}
    data_info = {"manifest": str(args.manifest.resolve()), "split": args.split or "all"}
    metrics = evaluate(records, predict, args.out, model_info=model_info, data_info=data_info,
                       floors=not args.no_floors, progress=not args.no_progress)
    shown = ("detection_auc", "pointing_game", "dice", "dice_top15", "rsna_map")
    print(", ".join(f"{k} {'n/a' if metrics[k] is None else format(metrics[k], '.3f')}" for k in shown))
    print(f"report: {(args.out / 'index.html').resolve()}")
    return 0
