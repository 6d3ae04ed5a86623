"""What the reader sees in a file: the logic behind ``pilletgan inspect``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import PilletGANError
from .reading import load_cxr

__all__ = ["expand_inputs", "format_report", "inspect_file"]


def expand_inputs(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield files: each path as given, folders walked recursively in sorted order (symlinks not followed)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if (p.is_file() and not p.is_symlink())
                              or (p.is_symlink() and p.resolve().is_file()))
        else:
            yield path


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Read ``path`` and describe it; never raises for a bad file (``status`` is ``error``)."""
    path = Path(path)
    try:
        image, meta = load_cxr(path)
    except PilletGANError as err:
        return {"path": str(path), "status": "error", "error": type(err).__name__, "reason": err.reason}
    return {
        "path": str(path),
        "status": "ok",
        "format": meta["format"],
        "modality": meta.get("modality"),
        "rows": int(image.shape[0]),
        "columns": int(image.shape[1]),
        "photometric_interpretation": meta.get("photometric_interpretation"),
        "transfer_syntax": meta.get("transfer_syntax_name") or meta.get("transfer_syntax"),
        "pixel_spacing": meta.get("pixel_spacing"),
        "pixel_spacing_source": meta.get("pixel_spacing_source"),
        "min": float(image.min()),
        "max": float(image.max()),
    }


def format_report(record: dict[str, Any]) -> str:
    """One human-readable line per file."""
    if record["status"] != "ok":
        return f"ERROR {record['path']}: {record['error']}: {record['reason']}"
    spacing = record["pixel_spacing"]
    spacing_text = f"{spacing[0]:.4g}x{spacing[1]:.4g} mm ({record['pixel_spacing_source']})" if spacing else "spacing unknown"
    return (f"ok    {record['path']}: {record['format']} {record['modality'] or '-'} "
            f"{record['rows']}x{record['columns']} {record['photometric_interpretation'] or '-'} "
            f"{record['transfer_syntax'] or '-'} {spacing_text} range [{record['min']:.6g}, {record['max']:.6g}]")
