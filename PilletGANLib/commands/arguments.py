"""Arguments that several ``pilletgan`` commands share, and building the predictor they describe.

Only argparse and pathlib here: every command's parser is built on ``pilletgan --help``, so nothing heavy
may load at import time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["SPLITS", "add_device_argument", "add_manifest_arguments", "add_model_arguments", "add_model_path_argument",
           "add_progress_argument", "load_predictor"]

#: Manifest splits (``PilletGANLib.data.manifest.SPLITS``, repeated so the parser needs no numpy).
SPLITS = ("train", "val", "test")


def add_model_path_argument(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """``--model MODEL.pt`` (default: the shipped model)."""
    parser.add_argument("--model", type=Path, metavar="MODEL.pt",
                        help=help_text or "model .pt with its .json card (default: the shipped model, or "
                                          "$PILLETGAN_MODEL)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda, cuda:1, ...")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_manifest_arguments(parser: argparse.ArgumentParser, default_split: str | None, what: str) -> None:
    """``--manifest M.csv`` and ``--split``; ``what`` says what the manifest's images are for."""
    parser.add_argument("--manifest", required=True, type=Path, help=f"manifest CSV whose images {what}")
    default = f"default: {default_split}" if default_split else "default: all images"
    parser.add_argument("--split", choices=SPLITS, default=default_split, help=f"manifest split to use ({default})")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--bf16``, ``--batch-size``, ``--workers``, ``--threshold``: what
    :func:`load_predictor` reads."""
    add_model_path_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--bf16", action="store_true", help="run the network in bfloat16")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes decoding files (default 0)")
    parser.add_argument("--threshold", type=float, help="heat-map threshold for the mask (default: the calibrated one)")


def load_predictor(args: argparse.Namespace):
    """The :class:`~PilletGANLib.inference.Predictor` that :func:`add_model_arguments`' arguments describe."""
    from ..inference import Predictor

    predictor = Predictor.from_path(args.model, device=args.device, bf16=args.bf16, batch_size=args.batch_size,
                                    num_workers=args.workers)
    if args.threshold is not None:
        localizer = predictor.localizer
        localizer.calibration = localizer.calibration.replace(threshold=args.threshold)
    return predictor
