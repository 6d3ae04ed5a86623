"""``pilletgan train --manifest M.csv --out RUN_DIR [--config CFG] [--set key=value ...] [--resume]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train PILLET-GAN (or the Fixed-Point GAN baseline) from a manifest",
        description="Train with MONAI engines: checkpoints, TensorBoard, validation, export of a calibrated model "
                    "(RUN_DIR/model.pt + model.json). Runs data-parallel under torchrun. Ctrl-C leaves a "
                    "resumable checkpoint.")
    parser.add_argument("--manifest", required=True, help="manifest CSV (see `pilletgan data manifest`)")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--config", type=Path, help="JSON or YAML file of settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. image_size=64, attention=none, iterations=2000 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from its newest checkpoint; `iterations` is the new total")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.config import load_config
    from ..engine.workflow import CONFIG_FILE, train

    base = None
    if args.resume and (args.out / CONFIG_FILE).is_file():
        base = json.loads((args.out / CONFIG_FILE).read_text(encoding="utf-8"))
    config = load_config(args.config, args.set, base=base)
    summary = train(args.manifest, args.out, config, resume=args.resume, progress=not args.no_progress)
    if summary.get("model"):
        print(json.dumps(summary, indent=2))
    return 0
