"""``pilletgan compare REPORT_A REPORT_B [--out comparison.json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare two evaluation reports image by image (paired intervals, McNemar)",
        description="Align the per_image.csv of two `pilletgan evaluate` reports of the same images and print, for "
                    "detection AUC (localization-only images left out), pointing game, Dice of the top 15 %, mask "
                    "Dice and laterality (mass and peak, over the images whose truth lies in one half, and again over "
                    "those where the image's grey levels lean to the healthy half and those where the opacity is no "
                    "brighter than its mirror), A, B, A minus "
                    "B and a paired bootstrap interval of the difference; for the pointing game and laterality also "
                    "the images where only one method is right and the exact McNemar p-value.")
    parser.add_argument("report_a", type=Path, help="report folder (or its per_image.csv) of method A")
    parser.add_argument("report_b", type=Path, help="report folder (or its per_image.csv) of method B")
    parser.add_argument("--resamples", type=whole_number(1), default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=whole_number(0), default=0)
    parser.add_argument("--out", type=Path, help="also write the comparison to this JSON file (its folder is made)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import paired_comparison, read_per_image
    from ..evaluation.report import write_json

    def table(path: Path) -> Path:
        return path / "per_image.csv" if path.is_dir() else path

    comparison = {"a": str(args.report_a), "b": str(args.report_b),
                  **paired_comparison(read_per_image(table(args.report_a)), read_per_image(table(args.report_b)),
                                      resamples=args.resamples, confidence=args.confidence, seed=args.seed)}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(comparison, args.out)
    print(json.dumps(comparison, indent=2))
    return 0
