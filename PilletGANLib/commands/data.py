"""``pilletgan data manifest ...``: data tasks."""

from __future__ import annotations

import argparse

from . import manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data tasks: manifests of public datasets, class folders, "
                                                "semi-synthetic data",
                                   description="Prepare the data that training and evaluation read.")
    tasks = parser.add_subparsers(dest="data_command", metavar="TASK", required=True)
    manifest.register(tasks)
