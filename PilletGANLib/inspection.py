"""What the reader sees in a file: the logic behind ``pilletgan inspect``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .dicom.reader import read_dicom_image
from .errors import error_kind, error_reason
from .reading import load_cxr
from .text import path_text

__all__ = ["expand_inputs", "format_report", "inspect_file", "quiet_reader_warnings"]


def expand_inputs(paths: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield the entries to read: each path as given, and every entry of a folder that is not itself a folder
    (regular files, links to files, dangling links, FIFOs, sockets), walked recursively in sorted order.
    Links to folders are not followed, so a link loop cannot make the walk endless. The folder ``skip`` (a run's
    output folder inside an input folder) is not walked, so a second run does not read the first one's results."""
    skipped = os.path.realpath(skip) if skip is not None else None
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            kept = (name for name in dirnames if not os.path.islink(os.path.join(dirpath, name))
                    and os.path.realpath(os.path.join(dirpath, name)) != skipped)
            dirnames[:] = sorted(kept)
            yield from (Path(dirpath, name) for name in sorted(filenames))


def quiet_reader_warnings() -> None:
    """Stop the reader logging what a command prints with each file's record anyway (so it is printed once)."""
    logging.getLogger(read_dicom_image.__module__).setLevel(logging.ERROR)


def inspect_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``path`` and describe it; never raises for a bad file (``status`` is ``error``, with the error's
    ``kind`` from :mod:`PilletGANLib.errors`, its class and the reason)."""
    path = Path(path)
    try:
        image, meta = load_cxr(path)
    except Exception as err:  # noqa: BLE001 - inspect reports every file, whatever its reading raised
        return {"path": path_text(path), "status": "error", "kind": error_kind(err), "error": type(err).__name__,
                "reason": error_reason(err)}
    rows, columns = int(image.shape[0]), int(image.shape[1])
    return {
        "path": path_text(path),
        "status": "ok",
        "format": meta["format"],
        "modality": meta.get("modality"),
        "width": columns,
        "height": rows,
        "rows": rows,
        "columns": columns,
        "photometric_interpretation": meta.get("photometric_interpretation"),
        "transfer_syntax": meta.get("transfer_syntax_name") or meta.get("transfer_syntax"),
        "pixel_spacing": meta.get("pixel_spacing"),
        "pixel_spacing_source": meta.get("pixel_spacing_source"),
        "min": float(image.min()),
        "max": float(image.max()),
        "warnings": list(meta.get("warnings") or []),
    }


def format_report(record: dict[str, Any]) -> str:
    """One human-readable line per file (sizes as width x height, as image viewers show them)."""
    if record["status"] != "ok":
        return f"ERROR {record['path']}: {record['kind']}: {record['reason']}"
    spacing = record["pixel_spacing"]
    spacing_text = (f"pixel {spacing[1]:.4g}x{spacing[0]:.4g} mm ({record['pixel_spacing_source']})" if spacing
                    else "spacing unknown")
    line = (f"ok    {record['path']}: {record['format']} {record['modality'] or '-'} "
            f"{record['width']}x{record['height']} px (width x height) {record['photometric_interpretation'] or '-'} "
            f"{record['transfer_syntax'] or '-'} {spacing_text} range [{record['min']:.6g}, {record['max']:.6g}]")
    return line + "".join(f"\n      warning: {warning}" for warning in record["warnings"])
