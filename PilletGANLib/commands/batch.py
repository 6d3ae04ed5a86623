"""``pilletgan batch EXPORT_DIR --out OUT_DIR [--model PATH] [--workers N] [--resume] [--select ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_model_arguments, load_predictor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="localize pneumonia on every chest radiograph of a PACS export folder (DICOM SEG out)",
        description="Walk EXPORT_DIR (files with or without .dcm, DICOMDIRs, anything else skipped with its reason), "
                    "and write per radiograph OUT_DIR/<study uid>/<series uid>/<sop uid>/seg.dcm (+ heatmap_seg.dcm, "
                    "overlay.png) and result.json, plus summary.csv, errors.csv, skipped.csv and run.json. "
                    "Exit code 0: every file succeeded; 1: some files failed (see errors.csv); 2: the run could not "
                    "start. Under torchrun the radiographs are split across the processes. See docs/batch.md.")
    parser.add_argument("input", type=Path, metavar="EXPORT_DIR", help="the export folder (only read)")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT_DIR",
                        help="output folder, outside EXPORT_DIR; must be empty unless --resume")
    add_model_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue a run in OUT_DIR: keep complete results, redo partial or missing ones; images "
                             "that failed before are reported again without being read")
    parser.add_argument("--retry-failed", action="store_true",
                        help="with --resume: try the images that failed in earlier runs again")
    parser.add_argument("--select", metavar="RULES", default=None,
                        help="which images to analyse, e.g. 'modality=CR,DX;body_part=CHEST;view=PA,AP' "
                             "(default: modality=CR,DX; '*' means any value)")
    parser.add_argument("--heatmap-seg", action="store_true", help="also write the heat map as a FRACTIONAL SEG")
    parser.add_argument("--png", action="store_true", help="also write an overlay PNG per radiograph")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..batch import EXIT_OK, check_run_paths, describe, device_for_rank, run_batch, torchrun_environment
    from ..dicom import SelectionRules
    from ..errors import ConfigurationError

    if args.retry_failed and not args.resume:
        raise ConfigurationError("--retry-failed continues a run: give --resume with it")
    environment = torchrun_environment()
    rules = SelectionRules.parse(args.select)
    if environment.rank == 0:  # early, before the slow model load; only rank 0 decides (run_batch checks again there)
        check_run_paths(args.input, args.out, resume=args.resume)
    if environment.world_size > 1:
        args.device = device_for_rank(args.device, environment.local_rank)
    predictor = load_predictor(args)
    summary = run_batch(args.input, args.out, predictor, rules=rules, resume=args.resume,
                        retry_failed=args.retry_failed, heatmap_seg=args.heatmap_seg,
                        png=args.png, progress=not args.no_progress, rank=environment.rank,
                        world_size=environment.world_size)
    if environment.rank != 0:
        return EXIT_OK  # the run's outcome is rank 0's to report; another non-zero rank would make torchrun kill it
    print(describe(summary))
    return summary.exit_code
