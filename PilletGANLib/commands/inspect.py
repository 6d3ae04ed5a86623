"""``pilletgan inspect FILE... [--json]``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inspect", help="show what the reader sees in files or folders",
                                   description="Read each file as a chest radiograph and report what was found. "
                                               "Exit code 0 when every file reads, 1 when any fails.")
    parser.add_argument("paths", nargs="+", metavar="FILE", help="files or folders (walked recursively)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inspection import expand_inputs, format_report, inspect_file

    records = [inspect_file(path) for path in expand_inputs(args.paths)]
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for record in records:
            print(format_report(record))
    if not records:
        print("no files found")
        return 1
    return 0 if all(r["status"] == "ok" for r in records) else 1
