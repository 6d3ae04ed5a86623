"""``pilletgan train-lung-fields --siim SRC --out lung_fields.pt [--epochs N] [--val-fold K ...]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-lung-fields", help="train the lung-field regressor of localization.lung_prior on SIIM lung boxes",
        description="Train the small network that predicts the box around both lungs of a radiograph (used by "
                    "localization.lung_prior) on the pre-resized SIIM set's lung-field boxes "
                    "(labels/lung_boxes_dungnb1333.csv); validation folds are held out and scored by IoU.")
    parser.add_argument("--siim", required=True, type=Path, help="pre-resized SIIM folder (images/, labels/)")
    parser.add_argument("--out", required=True, type=Path, help="weights .pt (its .json card is written beside it)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--val-fold", type=int, action="append", help="validation fold (repeatable; default 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.lung_fields import LungFieldTrainingConfig, train_siim_lung_fields

    summary = train_siim_lung_fields(args.siim, args.out, LungFieldTrainingConfig(epochs=args.epochs),
                                     val_folds=tuple(args.val_fold or (3,)), progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0
