"""``pilletgan infer INPUT... --out DIR [--model PATH]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..outputs import DEFAULT_FORMATS, FORMATS
from ..text import path_text
from .arguments import add_model_arguments, load_predictor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="localize pneumonia on radiograph files and write maps, masks, overlays and records",
        description="For each input, in the source pixel grid: <stem>_heatmap.nrrd (the heat map), <stem>.seg.nrrd "
                    "(the mask as a Slicer segmentation), <stem>_overlay.png and <stem>.json; --formats nifti adds "
                    "<stem>_heatmap.nii.gz and <stem>_mask.nii.gz. Exit code 1 when any input failed, 2 when there is "
                    "nothing to analyse.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="DICOM or image files, or folders (walked)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), choices=sorted(FORMATS),
                        help=f"outputs to write (default: {' '.join(DEFAULT_FORMATS)}; one heat-map format)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError, FileNotFoundInputError
    from ..inference.files import infer_files
    from ..inspection import expand_inputs, quiet_reader_warnings
    from ..outputs import NO_FINDING

    for folder in args.inputs:
        if Path(folder).is_dir() and os.path.realpath(folder) == os.path.realpath(args.out):
            raise ConfigurationError(f"the output folder {path_text(args.out)} is the input folder: a later run would "
                                     "read these results as radiographs; choose an output folder of its own (it may "
                                     "lie inside the input folder, which is then walked around it)")
    inputs = list(expand_inputs(args.inputs, skip=args.out))
    if not inputs:
        folders = ", ".join(path_text(p) for p in args.inputs)
        raise FileNotFoundInputError("no files to analyse: the folder is empty (give radiograph files, or folders "
                                     "that hold them)", folders)
    predictor = load_predictor(args)
    quiet_reader_warnings()  # each image's line below shows its warnings
    summary = infer_files(inputs, args.out, predictor, args.formats)
    for record in summary.written:
        warnings = "".join(f"; warning: {w}" for w in record["warnings"])
        finding = record["finding"] or f"finding {NO_FINDING}"
        print(f"ok    {record['input']}: score {record['score']:.4f}, {finding}, {record['boxes']} box(es) -> "
              f"{args.out}{warnings}")
    for record in summary.failed:
        print(f"ERROR {record['input']}: {record['kind']}: {record['reason']}")
    return 0 if summary.ok else 1
