"""Run-level files of a batch run: ``summary.csv``, ``errors.csv``, ``skipped.csv`` and ``run.json``."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import platform
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..outputs import atomic_path, json_ready
from ..text import csv_cell
from ..version import __version__
from .outputs import OUTPUT_NAMES, RESULT_NAME
from .records import BatchSummary, FileProblem, InstanceRecord

__all__ = ["PROBLEM_COLUMNS", "SUMMARY_COLUMNS", "describe", "run_record", "software_versions", "write_csv",
           "write_reports"]

#: Columns of ``summary.csv``; file columns hold paths relative to the output folder.
SUMMARY_COLUMNS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid", "source", "status", "score",
                   "finding", "threshold", "n_boxes", "boxes", *OUTPUT_NAMES, "result", "error", "warnings")
#: Columns of ``errors.csv`` and ``skipped.csv``; ``file`` is relative to the export folder.
PROBLEM_COLUMNS = ("file", "stage", "kind", "reason")
_PACKAGES = ("torch", "monai", "pydicom", "highdicom", "numpy")


def software_versions() -> dict[str, str | None]:
    """Versions of PilletGAN, Python and the packages the results depend on."""
    versions: dict[str, str | None] = {"pilletgan": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _summary_row(record: InstanceRecord) -> dict[str, Any]:
    row = {key: getattr(record, key) for key in ("study_instance_uid", "series_instance_uid", "sop_instance_uid",
                                                 "source", "score", "finding", "threshold", "error")}
    row.update(status=record.status.value, n_boxes=len(record.boxes) if record.files else "",
               boxes=json.dumps(json_ready(record.boxes), separators=(",", ":")) if record.files else "",
               result=record.files.get("result", ""),
               warnings=json.dumps(record.warnings, ensure_ascii=False) if record.warnings else "")
    row.update({kind: record.files.get(kind, "") for kind in OUTPUT_NAMES})
    return {key: "" if value is None else value for key, value in row.items()}


def write_csv(path: Path, columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` (extra keys ignored) under ``columns`` to ``path`` atomically; returns ``path``.

    Every cell passes :func:`~PilletGANLib.text.csv_cell` (file names that are not UTF-8 kept readably, cells a
    spreadsheet would run as formulas prefixed with an apostrophe); every front door's CSV is written here.
    """
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    return path


def run_record(summary: BatchSummary) -> dict[str, Any]:
    """The content of ``run.json``: versions, model, settings, counts, skip kinds, timings, exit code."""
    return json_ready({
        "software": software_versions(),
        "model": summary.model,
        "settings": summary.settings,
        "counts": summary.counts(),
        "skipped_by_kind": dict(sorted(Counter(p.kind for p in summary.problems if p.stage == "discovery").items())),
        "timings": summary.timings,
        "started": summary.started,
        "finished": summary.finished,
        "exit_code": summary.exit_code,
        "files": {"summary": summary.summary_csv.name, "errors": summary.errors_csv.name,
                  "skipped": summary.skipped_csv.name, "per_instance_record": RESULT_NAME},
        **summary.sections,
    })


def write_reports(summary: BatchSummary) -> None:
    """Write the four run-level files into the output folder, each atomically; ``run.json`` last."""
    write_csv(summary.summary_csv, SUMMARY_COLUMNS, (_summary_row(r) for r in summary.records))
    for path, problems in ((summary.errors_csv, summary.errors), (summary.skipped_csv, summary.skips)):
        write_csv(path, PROBLEM_COLUMNS, (_problem_row(p) for p in problems))
    with atomic_path(summary.run_json) as temporary:
        temporary.write_text(json.dumps(run_record(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _problem_row(problem: FileProblem) -> dict[str, str]:
    return {key: getattr(problem, key) for key in PROBLEM_COLUMNS}


def describe(summary: BatchSummary) -> str:
    """A few lines for the terminal: counts, timings, where the reports are."""
    timings = summary.timings
    rate = timings.get("instances_per_s")
    lines = [
        f"{summary.found} radiograph(s) found: {summary.succeeded} succeeded, {summary.already_done} already done, "
        f"{summary.failed} failed",
        f"{summary.skipped} other file(s) skipped, {summary.input_errors} of them broken or unreadable",
        f"time: discovery {timings['discovery_s']:.1f} s, inference {timings['inference_s']:.1f} s, "
        f"total {timings['total_s']:.1f} s" + (f" ({rate:.2f} instances/s)" if rate else ""),
        f"results: {summary.out_dir}  (summary.csv, errors.csv: {len(summary.errors)} row(s), "
        f"skipped.csv: {len(summary.skips)} row(s), run.json)",
    ]
    return "\n".join(lines)
