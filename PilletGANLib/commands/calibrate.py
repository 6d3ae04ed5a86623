"""``pilletgan model calibrate --manifest M.csv [--split val] --out NEW.pt [--model M.pt] [--set localization.key=value]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_manifest_arguments, add_model_path_argument, add_progress_argument, number_in


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="refit a model's heat scale, mask threshold and detection threshold (optionally with a "
                          "changed recipe)",
        description="Copy a model with changed recipe settings (difference map, smoothing, lung gate, priors, score "
                    "rule...) and refit its calibration (heat-map scale and mask threshold) on the healthy images of a "
                    "manifest split, and the detection threshold of its finding (suspected / not suspected) at a stated "
                    "specificity on those images. The weights are unchanged; the new card records where it came from.")
    add_model_path_argument(parser)
    add_manifest_arguments(parser, "val", "calibrate (its healthy ones)")
    parser.add_argument("--out", required=True, type=Path, help="the new model .pt (its .json card is written beside it)")
    parser.add_argument("--set", action="append", default=[], metavar="localization.KEY=VALUE",
                        help="change a recipe setting, e.g. localization.lung_gate=true (repeatable; docs/config.md "
                             "lists them)")
    parser.add_argument("--lung-fields", type=Path, metavar="LUNG_FIELDS.pt",
                        help="lung-field model for localization.lung_prior and opacity_prior (default: the one the "
                             "model's card names; made by pilletgan prior lung-fields); copied beside --out")
    parser.add_argument("--opacity-prior", type=Path, metavar="OPACITY_PRIOR.pt",
                        help="opacity-location template for localization.opacity_prior (default: the one the model's "
                             "card names; made by pilletgan prior opacity-template); copied beside --out")
    parser.add_argument("--percentile", type=number_in(0, 100), default=99.0,
                        help="healthy-pixel percentile of the mask threshold (default 99)")
    parser.add_argument("--specificity", type=_specificity, default=0.95,
                        help="specificity of the detection threshold: the share of the healthy images whose detection "
                             "score falls below it, in (0, 1) (default 0.95: their 95th percentile). A research "
                             "operating point, not a diagnosis")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def _specificity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1) (e.g. 0.95 for 95 %), got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest, select_split
    from ..engine.config import parse_overrides
    from ..errors import ConfigurationError
    from ..inference.calibration import recalibrate_model

    if any(not pair.startswith("localization.") for pair in args.set):
        raise ConfigurationError("calibrate only changes recipe settings: use --set localization.KEY=VALUE")
    localization = parse_overrides(args.set, {}).get("localization")
    records = select_split(read_manifest(args.manifest, check_files=True), args.split)
    card = recalibrate_model(args.model, records, args.out, localization, args.percentile,
                             progress=not args.no_progress, lung_fields=args.lung_fields,
                             opacity_prior=args.opacity_prior, specificity=args.specificity)
    print(json.dumps({"model": str(args.out), "localization": card["localization"],
                      "calibration": card["calibration"]}, indent=2))
    return 0
