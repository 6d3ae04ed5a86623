"""One rule for turning file paths and untrusted text into text every writer can store and show.

File names are bytes on POSIX: a name that is not valid UTF-8 reaches Python as a ``str`` holding lone
surrogates (``os.fsdecode``), which every UTF-8 writer (CSV, JSON, the terminal) refuses. :func:`path_text`
writes each such byte as ``\\xNN`` instead, so a report always names the file, readably and unambiguously.
:func:`csv_cell` adds the spreadsheet rule: a text cell that a spreadsheet would run as a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, which spreadsheets
show as text and do not execute. JSON keeps the text as it is (JSON is not executed). :func:`header_excerpt`
quotes a value read from a file in a message: control characters escaped and the length bounded, since a damaged
length field can make one DICOM value swallow the rest of the file; :func:`error_excerpt` does the same for a parser's
error.

This module imports nothing from the library, so :mod:`PilletGANLib.errors` can use it too.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["FORMULA_PREFIXES", "csv_cell", "error_excerpt", "header_excerpt", "path_text"]

#: First characters that make spreadsheets (Excel, LibreOffice, Google Sheets) read a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def path_text(value: str | bytes | os.PathLike[Any]) -> str:
    """``value`` (a path, a file name or text from a file) as valid Unicode text.

    Bytes that are not UTF-8 (lone surrogates left by ``os.fsdecode``) become ``\\xNN``; everything else is
    unchanged, so a valid name reads as itself. The result always encodes as UTF-8.
    """
    if isinstance(value, (bytes, os.PathLike)):
        value = os.fsdecode(value)
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that did not come from undecodable bytes
        raw = value.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def header_excerpt(value: Any, limit: int = 64) -> str:
    """``repr`` of a value read from a file, for a message: at most ``limit`` characters, longer ones cut with the
    total length said, control and undecodable characters escaped."""
    shown = path_text(repr(value))
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit - 3]}... ({len(shown)} characters)"


def error_excerpt(err: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` of an exception raised while reading a file, on one line and at most ``limit``
    characters of message (a parser's message can quote the damaged bytes)."""
    detail = " ".join(path_text(str(err)).split())
    if len(detail) > limit:
        detail = f"{detail[:limit - 3]}..."
    return f"{type(err).__name__}: {detail}"


def csv_cell(value: Any) -> Any:
    """A CSV cell: text goes through :func:`path_text` and is defused against formula injection; other values
    (numbers, ``None``) are returned unchanged."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = path_text(value)
    if not isinstance(value, str):
        return value
    text = path_text(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
