"""``pilletgan model check-healing --manifest M.csv --classifier CLF.pt --out DIR [--split val] [--model M.pt]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import (
    add_device_argument,
    add_manifest_arguments,
    add_model_path_argument,
    add_progress_argument,
    whole_number,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-healing", help="does the healed twin heal? read a model's healed twins with an independent classifier",
        description="Read a PILLET-GAN model's healed twins with an independent classifier (one made by `pilletgan "
                    "model train-classifier` with the model's image_size and margin): its AUC on the inputs and on "
                    "the twins, the share of diseased twins it scores under the healthy images' median, and, over "
                    "the disease images whose truth lies in one half, how often healing the sick half lowers its "
                    "logit more than healing the other half (beside the same decision with mirrored halves, no GAN). "
                    "Writes DIR/healing.json and DIR/healing_per_image.csv.")
    add_model_path_argument(parser)
    parser.add_argument("--classifier", required=True, type=Path, metavar="CLASSIFIER.pt",
                        help="classifier baseline .pt with its .json card (kind 'classifier')")
    add_manifest_arguments(parser, "val", "are checked")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=whole_number(1), default=16, help="images per forward pass (default 16)")
    parser.add_argument("--workers", type=whole_number(0), default=0, help="worker processes decoding files (default 0)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest, select_split
    from ..errors import ConfigurationError, DataError
    from ..evaluation.healing import healing_rows, healing_summary, write_healing_csv
    from ..evaluation.model import predictor_from_path
    from ..evaluation.report import write_json
    from ..inference import Predictor

    records = select_split(read_manifest(args.manifest, check_files=True, localization_only=True), args.split)
    if not records:
        raise DataError(f"no images in split {args.split!r}", args.manifest)
    predictor = Predictor.from_path(args.model, device=args.device, backend="torch")
    classifier = predictor_from_path(args.classifier, device=args.device)
    if isinstance(classifier, Predictor):
        raise ConfigurationError(f"{args.classifier} is a PilletGAN model; --classifier needs a classifier baseline "
                                 "(pilletgan model train-classifier)")
    rows = healing_rows(predictor, classifier, records, args.batch_size, args.workers, progress=not args.no_progress)
    if not rows:
        raise DataError(f"no image of split {args.split!r} could be read", args.manifest)
    summary = {"model": str(args.model or "shipped default"), "classifier": str(args.classifier),
               "split": args.split, **healing_summary(rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_healing_csv(rows, args.out / "healing_per_image.csv")
    write_json(summary, args.out / "healing.json")
    print(json.dumps(summary, indent=2))
    return 0
