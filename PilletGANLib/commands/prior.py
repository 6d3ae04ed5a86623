"""``pilletgan prior lung-fields|opacity-template``: fitting the auxiliary priors of the lesion map on SIIM data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_progress_argument, whole_number

#: The opacity template's largest grid (``PilletGANLib.priors.opacity_template.MAX_GRID``, repeated so the parser
#: needs no torch).
MAX_TEMPLATE_GRID = 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prior", help="fit the lung-field model or the opacity-location template on SIIM data",
        description="Fit an auxiliary prior of the lesion map (the recipe's lung_prior and opacity_prior) on the "
                    "pre-resized SIIM-FISABIO-RSNA set (images/, labels/); validation folds are held out.")
    priors = parser.add_subparsers(dest="prior_command", metavar="PRIOR", required=True)

    lung_fields = priors.add_parser(
        "lung-fields", help="train the lung-field regressor on SIIM lung-field boxes",
        description="Train the small network that predicts the box around both lungs of a radiograph on the SIIM "
                    "lung-field boxes (labels/lung_boxes_dungnb1333.csv); held-out folds are scored by IoU.")
    lung_fields.add_argument("--epochs", type=whole_number(1), default=30, help="training epochs (default 30)")
    add_progress_argument(lung_fields)
    lung_fields.set_defaults(func=run_lung_fields)

    template = priors.add_parser(
        "opacity-template", help="fit the box-supervised opacity-location template on SIIM opacity boxes (opt-in)",
        description="Count where the radiologists' opacity boxes of the training folds lie in lung-field "
                    "coordinates (each image framed by its lung-field box) and save that template.")
    template.add_argument("--grid", type=whole_number(2, MAX_TEMPLATE_GRID), default=48,
                          help=f"template cells per side, 2 to {MAX_TEMPLATE_GRID} (default 48)")
    template.set_defaults(func=run_opacity_template)

    for sub in (lung_fields, template):
        sub.add_argument("--siim", required=True, type=Path, help="pre-resized SIIM folder (images/, labels/)")
        sub.add_argument("--out", required=True, type=Path, help="the prior's .pt (its .json card is written beside it)")
        sub.add_argument("--val-fold", type=whole_number(0), action="append", help="held-out fold (repeatable; default 3)")


def run_lung_fields(args: argparse.Namespace) -> int:
    from ..priors.siim import train_siim_lung_fields
    from ..priors.training import LungFieldTrainingConfig

    summary = train_siim_lung_fields(args.siim, args.out, LungFieldTrainingConfig(epochs=args.epochs),
                                     val_folds=tuple(args.val_fold or (3,)), progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def run_opacity_template(args: argparse.Namespace) -> int:
    from ..priors.siim import fit_siim_opacity_template

    summary = fit_siim_opacity_template(args.siim, args.out, val_folds=tuple(args.val_fold or (3,)), grid=args.grid)
    print(json.dumps(summary, indent=2))
    return 0
