"""``pilletgan evaluate --manifest M.csv [--split test] --out DIR [--model PATH | --maps DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_device_argument, add_manifest_arguments, add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model or saved maps (and the floor maps) on a manifest",
        description="Score PilletGAN (the shipped model unless --model) or saved lesion maps (--maps) against the "
                    "manifest's labels, boxes and masks, beside a random map and a lung prior scored by the same "
                    "code. Writes metrics.json, per_image.csv, ROC/FROC/overlay figures and index.html to --out.")
    add_manifest_arguments(parser, None, "are scored (image, label, boxes, masks)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the report")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=None, help="model weights (.pt with its card; default: shipped model)")
    source.add_argument("--maps", type=Path, default=None,
                        help="folder of saved maps named by image stem (.npy, .nii.gz or 16-bit .png, source grid; "
                             "optional <stem>.json with 'score' and 'boxes') scored instead of a model")
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="model only: images per forward pass (default: 8)")
    parser.add_argument("--no-floors", action="store_true", help="do not score the random-map and lung-prior floors")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..data.manifest import read_manifest, select_split
    from ..errors import ConfigurationError
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
