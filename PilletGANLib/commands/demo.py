"""``pilletgan demo --out DIR [--model PATH] [--device ...]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .arguments import add_device_argument, add_model_path_argument, add_progress_argument, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="build a synthetic sample study and localize its opacity with the shipped model",
        description="Write DIR/sample_study/ (a chest radiograph phantom with a known opacity, as a DICOM CR file made "
                    "by PilletGAN), run the model on it as pilletgan batch does (DIR/results/: DICOM SEG, heat-map "
                    "SEG, overlay PNG, result.json, summary.csv), and write DIR/index.html. DIR must be new, empty "
                    "or an earlier demo's folder. Exit code 0 when the phantom was analysed.")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="demo folder")
    add_model_path_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--size", type=int, metavar="PIXELS",
                        help="rows and columns of the phantom (default 2048: 0.2 mm pixels)")
    parser.add_argument("--seed", type=whole_number(0), help="seed of the phantom and its opacity (default: the demo's, 2)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..demo import run_demo

    if not getattr(args, "verbose", False):
        logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every attribute module it copies
    phantom = {"size": None if args.size is None else (args.size, args.size), "seed": args.seed}
    summary = run_demo(args.out, model=args.model, device=args.device, progress=not args.no_progress,
                       **{key: value for key, value in phantom.items() if value is not None})
    print(summary.describe())
    return summary.exit_code
