"""``pilletgan batch`` over the hostile export (Testing/hostile_corpus.py) with the shipped model, as JSON.

Builds the corpus (every kind of hostile input the project knows: decompression bombs, 2 GiB lengths, a
3,000-deep sequence, names that are not UTF-8, ...), runs the batch command from a fresh process that is its
only parent, and prints the exit code, the rows of each run-level table, whether a traceback was printed,
the wall time and the peak resident memory of the batch process (``ru_maxrss``). The target: exit 1, no
traceback, peak under 1.5 GB.

    python benchmarks/bench_hostile.py [--model PATH] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEAK_TARGET_MIB = 1536


def rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model .pt (default: the shipped model)")
    parser.add_argument("--workers", type=int, default=0, help="decoding worker processes (default 0)")
    parser.add_argument("--keep", type=Path, help="build the corpus and outputs in this new folder and keep them")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "Testing"))
    from hostile_corpus import build_hostile_corpus, run_measured

    work = args.keep or Path(tempfile.mkdtemp(prefix="pilletgan_hostile_"))
    corpus = build_hostile_corpus(work / "export")
    out = work / "out"
    command = [sys.executable, "-m", "PilletGANLib.cli", "batch", str(corpus.root), "--out", str(out), "--png",
               "--no-progress", "--workers", str(args.workers)]
    if args.model:
        command += ["--model", args.model]
    clock = time.perf_counter()
    code, peak = run_measured(command, work / "batch.stdout", work / "batch.stderr",
                              env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    seconds = time.perf_counter() - clock
    output = (work / "batch.stdout").read_text(errors="replace") + (work / "batch.stderr").read_text(errors="replace")
    written = {name: (out / name).is_file() for name in ("summary.csv", "errors.csv", "skipped.csv", "run.json")}
    print(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "inputs": len(corpus.entries),
        "exit_code": code,
        "traceback": "Traceback" in output,
        "run_files_written": written,
        "rows": {name: rows(out / name) for name in ("summary.csv", "errors.csv", "skipped.csv") if written[name]},
        "wall_s": round(seconds, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_target_mib": PEAK_TARGET_MIB,
        "meets_target": code == 1 and "Traceback" not in output and all(written.values()) and peak < PEAK_TARGET_MIB,
        "work_dir": str(work) if args.keep else None,
    }, indent=2))


if __name__ == "__main__":
    main()
