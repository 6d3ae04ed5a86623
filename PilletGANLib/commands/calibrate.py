"""``pilletgan calibrate --model M.pt --manifest M.csv [--split val] --out NEW.pt [--set localization.key=value]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.manifest import SPLITS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="refit a model's heat scale and mask threshold (optionally with new localization settings)",
        description="Copy a model with changed localization settings (difference map, smoothing, lung gate, score "
                    "rule...) and refit its heat-map scale and mask threshold on the healthy images of a manifest "
                    "split. The weights are unchanged; the new card records where it came from.")
    parser.add_argument("--model", type=Path, help="model .pt with its card (default: the shipped model)")
    parser.add_argument("--manifest", required=True, type=Path, help="manifest whose healthy images calibrate")
    parser.add_argument("--split", choices=SPLITS, default="val", help="manifest split to use (default: val)")
    parser.add_argument("--out", required=True, type=Path, help="the new model .pt (its .json card is written beside it)")
    parser.add_argument("--set", action="append", default=[], metavar="localization.KEY=VALUE",
                        help="change a localization setting, e.g. localization.lung_gate=true (repeatable)")
    parser.add_argument("--lung-fields", type=Path, metavar="LUNG_FIELDS.pt",
                        help="lung-field model for localization.lung_prior (default: the one the model's card names); "
                             "copied beside --out")
    parser.add_argument("--opacity-prior", type=Path, metavar="OPACITY_PRIOR.pt",
                        help="opacity-location prior for localization.opacity_prior (default: the one the model's card "
                             "names; made by pilletgan fit-opacity-prior); copied beside --out")
    parser.add_argument("--percentile", type=float, default=99.0,
                        help="healthy-pixel percentile of the mask threshold (default 99)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest, select_split
    from ..engine.config import parse_overrides
    from ..errors import ConfigurationError
    from ..inference.calibration import recalibrate_model

    if any(not pair.startswith("localization.") for pair in args.set):
        raise ConfigurationError("calibrate only changes localization settings: use --set localization.KEY=VALUE")
    localization = parse_overrides(args.set, {}).get("localization")
    records = select_split(read_manifest(args.manifest, check_files=True), args.split)
    card = recalibrate_model(args.model, records, args.out, localization, args.percentile,
                             progress=not args.no_progress, lung_fields=args.lung_fields,
                             opacity_prior=args.opacity_prior)
    print(json.dumps({"model": str(args.out), "localization": card["localization"],
                      "calibration": card["calibration"]}, indent=2))
    return 0
