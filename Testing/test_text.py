"""The path-to-text rule, formula-safe CSV cells and the error taxonomy every report uses."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from PilletGANLib import errors
from PilletGANLib.outputs import json_ready
from PilletGANLib.text import csv_cell, error_excerpt, header_excerpt, path_text

#: A Latin-1 name (not UTF-8) as Python sees it: lone surrogates.
UNDECODABLE = os.fsdecode(b"caf\xe9_\xff.dcm")


def test_path_text_keeps_valid_names_and_escapes_undecodable_bytes() -> None:
    assert path_text("naïve/Ünïcode.dcm") == "naïve/Ünïcode.dcm"
    assert path_text(UNDECODABLE) == path_text(Path(UNDECODABLE)) == path_text(os.fsencode(UNDECODABLE))
    assert path_text(UNDECODABLE) == "caf\\xe9_\\xff.dcm"
    path_text(UNDECODABLE).encode("utf-8")  # always encodable
    assert path_text("\ud800 stray") == "\\ud800 stray"  # a surrogate that came from elsewhere


def test_excerpts_of_file_text_are_short_single_line_and_escaped() -> None:
    assert header_excerpt("CR") == "'CR'" and header_excerpt(b"\x00\x80") == "b'\\x00\\x80'"
    long = header_excerpt("A\nB" * 1000)
    assert len(long) < 90 and long.startswith("'A\\nB") and long.endswith("... (4002 characters)")
    assert header_excerpt(UNDECODABLE).encode("utf-8")
    err = ValueError("bad\nvalue " + "x" * 1000)
    assert error_excerpt(err) == "ValueError: bad value " + "x" * 287 + "..."


def test_csv_cells_defuse_formulas_and_keep_numbers() -> None:
    cells = [csv_cell(v) for v in ("=1+1", "+A1", "-2+3", "@SUM(A1)", "\tx", "plain", -0.5, 3, None, UNDECODABLE)]
    assert cells == ["'=1+1", "'+A1", "'-2+3", "'@SUM(A1)", "'\tx", "plain", -0.5, 3, None, "caf\\xe9_\\xff.dcm"]
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    buffer.getvalue().encode("utf-8")


def test_json_ready_makes_every_name_text() -> None:
    record = json_ready({UNDECODABLE: [Path(UNDECODABLE), "=x"]})
    assert record == {"caf\\xe9_\\xff.dcm": ["caf\\xe9_\\xff.dcm", "=x"]}
    json.dumps(record, ensure_ascii=False).encode("utf-8")


def test_errors_name_undecodable_files_and_carry_their_kind() -> None:
    err = errors.TruncatedFileError("the file ends early", UNDECODABLE)
    assert str(err) == "caf\\xe9_\\xff.dcm: the file ends early" and err.kind == "truncated"
    assert errors.EmptyFileError("empty").kind == "empty" and isinstance(errors.EmptyFileError("e"), errors.TruncatedFileError)
    assert {cls.kind for cls in (errors.MultiFrameError, errors.ColourImageError, errors.ImplausibleDimensionsError,
                                 errors.UnsupportedTransferSyntaxError)} == {"unsupported"}
    assert errors.error_kind(RecursionError("deep")) == errors.INTERNAL_KIND == "internal"
    assert errors.error_reason(ValueError("bad")) == "ValueError: bad"
    assert errors.error_reason(err) == "the file ends early"
