"""``pilletgan fit-opacity-prior --siim SRC --out opacity_prior.pt [--val-fold K ...]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit-opacity-prior", help="fit the opacity-location prior of localization.opacity_prior on SIIM boxes",
        description="Count where the radiologists' opacity boxes of the pre-resized SIIM set's training folds lie "
                    "in lung-field coordinates (each image framed by its lung-field box) and save that template; "
                    "validation folds are left out.")
    parser.add_argument("--siim", required=True, type=Path, help="pre-resized SIIM folder (images/, labels/)")
    parser.add_argument("--out", required=True, type=Path, help="template .pt (its .json card is written beside it)")
    parser.add_argument("--val-fold", type=int, action="append", help="held-out fold (repeatable; default 3)")
    parser.add_argument("--grid", type=int, default=48, help="template cells per side (default 48)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.opacity_prior import fit_siim_opacity_prior

    summary = fit_siim_opacity_prior(args.siim, args.out, val_folds=tuple(args.val_fold or (3,)), grid=args.grid)
    print(json.dumps(summary, indent=2))
    return 0
