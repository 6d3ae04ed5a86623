"""``pilletgan model calibrate|ensemble|export|train-classifier``: building and shipping model files."""

from __future__ import annotations

import argparse

from . import calibrate, ensemble, export, train_classifier


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="calibrate, combine and export model files; train the classifier baseline",
                                   description="Work on model files (.pt weights + .json card).")
    commands = parser.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    for module in (calibrate, ensemble, export, train_classifier):
        module.register(commands)
