"""Arguments that several ``pilletgan`` commands share, and building the predictor they describe.

Only argparse and pathlib here: every command's parser is built on ``pilletgan --help``, so nothing heavy
may load at import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["BACKENDS", "SPLITS", "add_device_argument", "add_manifest_arguments", "add_model_arguments",
           "add_model_path_argument", "add_network_run_arguments", "add_progress_argument", "load_predictor",
           "number_in", "positive_number", "whole_number"]

#: Manifest splits (``PilletGANLib.data.manifest.SPLITS``, repeated so the parser needs no numpy).
SPLITS = ("train", "val", "test")
#: Network backends (``PilletGANLib.inference.backends.BACKENDS``, repeated so the parser needs no torch).
BACKENDS = ("auto", "torch", "onnxruntime", "inductor")


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum`` (and at most ``maximum``; argparse names the
    option in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type``: a number within ``[low, high]`` (NaN and infinities are refused)."""

    def parse(text: str) -> float:
        value = _number(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie within [{low:g}, {high:g}], got {text}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number above 0 (seconds to wait)."""
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def add_model_path_argument(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """``--model MODEL.pt`` (default: the shipped model)."""
    parser.add_argument("--model", type=Path, metavar="MODEL.pt",
                        help=help_text or "model .pt with its .json card (default: the shipped model, or "
                                          "$PILLETGAN_MODEL)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda, cuda:1, ...")


def add_network_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--bf16``: what runs a PilletGAN network, and in which precision."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the network: auto (default: ONNX Runtime on the CPU, else torch), torch, "
                             "onnxruntime, inductor (torch.compile, compiled on the first batch; with --bf16 the "
                             "fastest on a CPU with AVX512-BF16)")
    parser.add_argument("--bf16", action="store_true", help="run the network in bfloat16 (maps differ slightly)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_manifest_arguments(parser: argparse.ArgumentParser, default_split: str | None, what: str) -> None:
    """``--manifest M.csv`` and ``--split``; ``what`` says what the manifest's images are for."""
    parser.add_argument("--manifest", required=True, type=Path, help=f"manifest CSV whose images {what}")
    default = f"default: {default_split}" if default_split else "default: all images"
    parser.add_argument("--split", choices=SPLITS, default=default_split, help=f"manifest split to use ({default})")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--backend``, ``--bf16``, ``--batch-size``, ``--workers``,
    ``--full-resolution-decode``, ``--threshold``: what :func:`load_predictor` reads."""
    add_model_path_argument(parser)
    add_device_argument(parser)
    add_network_run_arguments(parser)
    parser.add_argument("--batch-size", type=whole_number(1), default=8, help="images per forward pass (default 8)")
    parser.add_argument("--workers", type=whole_number(0), default=0,
                        help="worker processes decoding files (default 0)")
    parser.add_argument("--full-resolution-decode", action="store_true",
                        help="read every pixel (default: DICOM images at least 4x the network size are read at half or "
                             "a quarter of their resolution, JPEG 2000 decoded up to 13x faster; maps differ slightly)")
    parser.add_argument("--threshold", type=number_in(0, 1),
                        help="heat-map threshold for the mask, within [0, 1] (default: the calibrated one)")


def load_predictor(args: argparse.Namespace):
    """The :class:`~PilletGANLib.inference.Predictor` that :func:`add_model_arguments`' arguments describe."""
    from ..inference import Predictor

    predictor = Predictor.from_path(args.model, device=args.device, bf16=args.bf16, batch_size=args.batch_size,
                                    num_workers=args.workers, backend=args.backend,
                                    reduced_resolution_decode=not args.full_resolution_decode)
    if args.threshold is not None:
        localizer = predictor.localizer
        localizer.calibration = localizer.calibration.replace(threshold=args.threshold)
    return predictor
