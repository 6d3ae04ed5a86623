"""``pilletgan model calibrate|ensemble|export|train-classifier|check-healing``: building, shipping and checking model
files."""

from __future__ import annotations

import argparse

from . import calibrate, check_healing, ensemble, export, train_classifier


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="calibrate, combine and export model files; train the classifier "
                                                 "baseline; check a model's healing",
                                   description="Work on model files (.pt weights + .json card).")
    commands = parser.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    for module in (calibrate, ensemble, export, train_classifier, check_healing):
        module.register(commands)
