"""``pilletgan``: the command-line front door. Argument parsing only; the work is in the library.

User verbs are top-level (``inspect``, ``infer``, ``evaluate``, ``compare``, ``batch``, ``pacs``, ``listen``,
``demo``, ``train``); model-building and data tasks are grouped (``model``, ``prior``, ``data``). Building the
parser imports no torch, MONAI or PACS client: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .console import configure_console
from .errors import PilletGANError
from .version import __version__

#: Sub-command modules under ``PilletGANLib.commands``; each has ``register(subparsers)``.
COMMANDS = ("inspect", "infer", "evaluate", "compare", "batch", "pacs", "listen", "demo", "train", "model", "prior", "data")
#: Verbs of earlier releases and where they are now.
MOVED = {"calibrate": "model calibrate", "ensemble": "model ensemble", "manifest": "data manifest",
         "train-lung-fields": "prior lung-fields", "fit-opacity-prior": "prior opacity-template",
         "train-classifier": "model train-classifier"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pilletgan",
        description="Localize pneumonia on chest radiographs with PILLET-GAN (research use only).",
    )
    parser.add_argument("--version", action="version", version=f"pilletgan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    moved = next((MOVED[word] for word in argv[:1] if word in MOVED), None)
    if moved is not None:
        print(f"pilletgan {argv[0]} is now pilletgan {moved}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_console(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PilletGANError as err:
        print(f"pilletgan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"pilletgan {args.command}: interrupted" + (f" ({err})" if str(err) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
