"""``pilletgan model ensemble --model A.pt --model B.pt [...] --out ENSEMBLE.pt``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble", help="combine trained models of one architecture into a generator ensemble",
        description="Write one model whose weights hold several trained generators of the same network; at inference "
                    "their healed images are averaged and the lesion map is the input minus that average. The "
                    "ensemble takes the first model's localization settings and companion models; calibrate it "
                    "afterwards (pilletgan model calibrate --model ENSEMBLE.pt ...), since its heat scale is the first "
                    "model's.")
    parser.add_argument("--model", action="append", required=True, type=Path, dest="models", metavar="MODEL.pt",
                        help="a member model (.pt with its card); give it twice or more")
    parser.add_argument("--out", required=True, type=Path, help="the ensemble model .pt (its .json card is written beside it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.ensemble import combine_models

    card = combine_models(args.models, args.out)
    print(json.dumps({"model": str(args.out), "members": [m["source"] for m in card["ensemble"]],
                      "next": f"pilletgan model calibrate --model {args.out} --manifest M.csv --out CALIBRATED.pt"}, indent=2))
    return 0
