"""``pilletgan batch`` and ``pilletgan inspect`` over a hostile export: every input accounted for, once, with a
reason that names what is wrong; the run-level files always written; no traceback; bounded memory.

The corpus (``hostile_corpus.build_hostile_corpus``) is made from the project's sample radiographs; the model is
the tiny untrained one, so this checks the handling of inputs, not the maps.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hostile_corpus import ERRORS, SKIPPED, SUMMARY, build_hostile_corpus, run_measured

from PilletGANLib.text import FORMULA_PREFIXES, path_text

RUN_FILES = ("errors.csv", "run.json", "skipped.csv", "summary.csv")
#: A peak above this means a decompression bomb was decoded (the J2K one alone took 2.9 GB before the header check).
PEAK_LIMIT_MIB = 1536


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:  # strict UTF-8: every name must have been made text
        return list(csv.DictReader(handle))


def cell_text(value: str) -> str:
    """A CSV cell as the file name it stands for (the apostrophe that defuses a formula removed)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) else value


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}


def batch(export: Path, out: Path, model: Path, *extra: str) -> tuple[int, float, str, str]:
    command = [sys.executable, "-m", "PilletGANLib.cli", "batch", str(export), "--out", str(out), "--model", str(model),
               "--png", "--no-progress", *extra]
    stdout, stderr = (out.parent / f"{out.name}-{uuid.uuid4().hex[:8]}.{kind}" for kind in ("stdout", "stderr"))
    code, peak = run_measured(command, stdout, stderr, env=environment())
    return code, peak, stdout.read_text(errors="replace"), stderr.read_text(errors="replace")


def snapshot(root: Path) -> dict[str, tuple]:
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            info = os.lstat(os.path.join(dirpath, name))
            entries[os.path.join(dirpath, name)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, dicom_dir):
    return build_hostile_corpus(tmp_path_factory.mktemp("hostile") / "export", samples=dicom_dir)


@pytest.fixture(scope="module")
def hostile_run(corpus, tiny_model, tmp_path_factory):
    before = snapshot(corpus.root)
    out = tmp_path_factory.mktemp("hostile_out") / "out"
    code, peak, stdout, stderr = batch(corpus.root, out, tiny_model)
    return out, code, peak, stdout, stderr, before


def test_batch_accounts_for_every_input_once_with_its_reason(corpus, hostile_run):
    out, code, peak, stdout, stderr, before = hostile_run
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
    assert all((out / name).is_file() for name in RUN_FILES)
    summary, errors, skipped = (read_table(out / name) for name in ("summary.csv", "errors.csv", "skipped.csv"))
    listed: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for table, rows, column in ((SUMMARY, summary, "source"), (ERRORS, errors, "file"), (SKIPPED, skipped, "file")):
        for row in rows:
            listed.setdefault(cell_text(row[column]), []).append((table, row))
    expected = {path_text(os.path.relpath(entry.path, corpus.root)): entry for entry in corpus.entries}
    assert set(listed) == set(expected), "inputs missing from or unknown to the tables"
    for name, entry in expected.items():
        places = listed[name]
        tables = {table for table, _ in places}
        if entry.listed_in == SUMMARY:
            assert len(places) == 1 and tables == {SUMMARY}, (name, places)
            row = places[0][1]
            assert row["status"] == "succeeded" and row["seg"] and row["overlay"], (name, row)
            warnings = json.loads(row["warnings"]) if row["warnings"] else []  # a JSON list: texts hold "; "
            if entry.warning:
                assert any(entry.warning in warning for warning in warnings), (name, warnings)
            else:
                assert warnings == [], (name, warnings)
            continue
        # a failed radiograph is in summary.csv as 'failed' and in errors.csv with the reason: one listing each
        problems = [row for table, row in places if table != SUMMARY]
        assert len(problems) == 1 and {t for t, _ in places} - {SUMMARY} == {entry.listed_in}, (name, places)
        row = problems[0]
        assert row["kind"] == entry.kind and row["stage"] == entry.stage, (name, row)
        assert all(word.lower() in row["reason"].lower() for word in entry.words), (name, entry.words, row["reason"])
        if entry.stage != "discovery":
            assert [r["status"] for t, r in places if t == SUMMARY] == ["failed"], (name, places)

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["exit_code"] == 1 and run["counts"]["input_errors"] == sum(r["stage"] == "discovery" for r in errors)
    assert run["counts"]["succeeded"] == len(corpus.where(SUMMARY))
    assert stdout.count("radiograph(s) found") == 1
    assert snapshot(corpus.root) == before, "the export was modified"
    empty = [d for d, dirs, files in os.walk(out) if not dirs and not files]
    assert empty == [], f"empty folders left behind: {empty}"
    assert peak < PEAK_LIMIT_MIB, f"peak memory {peak:.0f} MiB"
    print(f"hostile batch: {len(corpus.entries)} inputs, peak RSS {peak:.0f} MiB")


def test_spreadsheet_and_encoding_hazards_are_defused(corpus, hostile_run):
    out = hostile_run[0]
    sources = [row["source"] for row in read_table(out / "summary.csv")]
    formulas = [s for s in sources if cell_text(s) != s]
    assert len(formulas) == 4 and all(s.startswith("'") and s[1] in "=+-@" for s in formulas)
    assert "good/caf\\xe9_\\xff\\xfe.dcm" in sources
    records = [json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*/*/*/result.json")]
    assert "good/caf\\xe9_\\xff\\xfe.dcm" in {r["source"] for r in records}
    assert "=HYPERLINK(1).dcm" in {r["source"] for r in records}  # JSON keeps the name as it is
    assert all(part.replace(".", "").isdigit() or part.startswith("h") for p in out.glob("*/*/*")
               for part in p.relative_to(out).parts)  # folders named by UIDs only


@pytest.mark.slow
def test_resume_remembers_failures_unless_retry_failed(corpus, hostile_run, tiny_model, tmp_path):
    first = hostile_run[0]
    out = tmp_path / "out"
    shutil.copytree(first, out, symlinks=True)
    failed = next(e for e in corpus.entries if e.stage == "inference")
    name = path_text(os.path.relpath(failed.path, corpus.root))

    code, _, _, stderr = batch(corpus.root, out, tiny_model, "--resume")
    assert code == 1 and "Traceback" not in stderr, stderr[-3000:]
    row = next(r for r in read_table(out / "errors.csv") if r["file"] == name)
    assert row["stage"] == "inference" and "remembered from an earlier run" in row["reason"]
    run = json.loads((out / "run.json").read_text())
    assert run["timings"]["instances_processed"] == 0  # nothing read again: done or remembered as failed
    assert {r["status"] for r in read_table(out / "summary.csv")} == {"already_done", "failed"}

    code, _, _, stderr = batch(corpus.root, out, tiny_model, "--resume", "--retry-failed")
    assert code == 1 and "Traceback" not in stderr, stderr[-3000:]
    row = next(r for r in read_table(out / "errors.csv") if r["file"] == name)
    assert "remembered" not in row["reason"] and "cannot be decoded" in row["reason"]
    retried = sum(entry.stage == "inference" for entry in corpus.entries)  # the radiographs that failed once
    assert json.loads((out / "run.json").read_text())["timings"]["instances_processed"] == retried


def test_inspect_json_prints_one_record_per_file_and_never_crashes(corpus):
    done = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "inspect", str(corpus.root), "--json"],
                          capture_output=True, text=True, timeout=600, env=environment())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    records = json.loads(done.stdout)
    files = sorted(path_text(os.path.join(d, f)) for d, _, names in os.walk(corpus.root) for f in names)
    assert sorted(r["path"] for r in records) == files
    by_path = {r["path"]: r for r in records}
    # one taxonomy: a file the batch refuses for what it is, inspect names the same way
    for entry in corpus.where(ERRORS):
        record = by_path.get(path_text(entry.path))
        if record is None or (entry.kind == "corrupt" and "UID" in " ".join(entry.words)):
            continue  # absent (listed in a DICOMDIR) or a valid image whose UIDs only a SEG needs
        assert record["status"] == "error" and record["kind"] == entry.kind, (entry.path, record)
    for entry in corpus.where(SUMMARY):
        assert by_path[path_text(entry.path)]["status"] == "ok", entry.path
