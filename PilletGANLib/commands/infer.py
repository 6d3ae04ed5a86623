"""``pilletgan infer INPUT... --out DIR [--model PATH]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import DEFAULT_FORMATS, FORMATS
from .arguments import add_model_arguments, load_predictor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="localize pneumonia on radiograph files and write maps, masks, overlays and records",
        description="For each input: <stem>_heatmap.nii.gz, <stem>_mask.nii.gz, <stem>_heatmap.nrrd, <stem>.seg.nrrd, "
                    "<stem>_overlay.png and <stem>.json in the source pixel grid. Exit code 1 when any input failed.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="DICOM or image files, or folders (walked)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), choices=sorted(FORMATS),
                        help="outputs to write (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.files import infer_files
    from ..inspection import expand_inputs

    predictor = load_predictor(args)
    summary = infer_files(list(expand_inputs(args.inputs)), args.out, predictor, args.formats)
    for record in summary.written:
        print(f"ok    {record['input']}: score {record['score']:.4f}, {record['boxes']} box(es) -> {args.out}")
    for record in summary.failed:
        print(f"ERROR {record['input']}: {record['error']}: {record['reason']}")
    return 0 if summary.ok else 1
