"""Saved lesion maps from any method, scored by the evaluation harness instead of a model.

A maps folder holds one map per image, named by the image file's stem (``ManifestRecord.key``):
``<stem>.npy``, ``<stem>.nii.gz`` or a (16-bit) ``<stem>.png``, ``rows x cols`` in the source image's
pixel grid, higher = more likely lesion. An optional ``<stem>.json`` may give ``score`` (the
detection score; default: the map's maximum) and ``boxes`` (a list of ``{"x1", "y1", "x2", "y2",
"score"}`` in source pixels, as ``pilletgan infer`` writes them). Saved maps carry no mask.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import ManifestRecord
from ..dicom.reader import check_dimensions
from ..errors import DataError, PilletGANError
from ..reading import load_cxr
from ..values import is_finite_number

__all__ = ["MAP_SUFFIXES", "MapPrediction", "SavedMaps", "find_map", "read_array"]

#: File name endings of saved maps, in the order they are looked for.
MAP_SUFFIXES = (".npy", ".nii.gz", ".png")
_BOX_KEYS = ("x1", "y1", "x2", "y2", "score")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """A 2-D array from ``.npy`` (numpy) or any file SimpleITK reads (NIfTI, PNG, NRRD, ...), as float64.

    Arrays come out ``rows x cols``; singleton axes are dropped. Raises DataError naming the file when
    it cannot be read, is not 2-D, announces a size no radiograph has (checked from the header, before any
    pixel is allocated), or holds values that are not finite or beyond what 32-bit floating point holds.
    """
    path = Path(path)
    try:
        if path.name.lower().endswith(".npy"):
            stored = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only, until copied below
            shape, read = stored.shape, lambda: np.array(stored)
        else:
            import SimpleITK as sitk  # only for these formats; keeps the package importable without it

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            shape = tuple(reversed(reader.GetSize())) + ((reader.GetNumberOfComponents(),)
                                                         if reader.GetNumberOfComponents() > 1 else ())
            read = lambda: sitk.GetArrayFromImage(reader.Execute())  # noqa: E731
        _check_shape(tuple(int(n) for n in shape), path)
        array = np.squeeze(np.asarray(read()))
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(f"cannot be read as a map or mask ({err})", path) from err
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DataError(f"expected one 2-D grey array, found {array.dtype} with shape {array.shape}", path)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise DataError("holds NaN or infinite values", path)
    if np.abs(array).max() > _FLOAT32_MAX:
        raise DataError(f"holds values up to {np.abs(array).max():g}, beyond what 32-bit floating point holds", path)
    return array


def _check_shape(shape: tuple[int, ...], path: Path) -> None:
    """Refuse, from the header, anything but one 2-D array of a radiograph's size (singleton axes aside)."""
    sides = [n for n in shape if n != 1]
    if len(sides) != 2:
        raise DataError(f"expected one 2-D grey array, the header announces shape {shape}", path)
    try:
        check_dimensions(*sides, path, "the header")
    except PilletGANError as err:
        raise DataError(err.reason, path) from err


def find_map(maps_dir: str | os.PathLike, key: str) -> Path:
    """The one map file of image ``key`` in ``maps_dir``; DataError when there is none or more than one."""
    maps_dir = Path(maps_dir)
    found = [maps_dir / f"{key}{suffix}" for suffix in MAP_SUFFIXES if (maps_dir / f"{key}{suffix}").is_file()]
    if not found:
        names = ", ".join(f"{key}{suffix}" for suffix in MAP_SUFFIXES)
        raise DataError(f"no saved map for image '{key}' (looked for {names})", maps_dir)
    if len(found) > 1:
        raise DataError(f"several maps for image '{key}': {', '.join(p.name for p in found)}; keep one", maps_dir)
    return found[0]


@dataclass
class MapPrediction:
    """A saved map in the shape the harness expects of a prediction (no mask)."""

    image: np.ndarray
    heatmap: np.ndarray
    score: float
    mask: np.ndarray | None = None
    boxes: list[dict[str, float]] = field(default_factory=list)


def _read_sidecar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as err:
        raise DataError(f"cannot be read as JSON ({type(err).__name__}: {str(err)[:200]})", path) from err
    if not isinstance(content, dict):
        raise DataError("expected a JSON object with 'score' and/or 'boxes'", path)
    score = content.get("score")
    if score is not None and not is_finite_number(score):
        raise DataError(f"'score' must be a finite number, got {str(score)[:40]}", path)
    boxes = content.get("boxes") or []
    if not isinstance(boxes, list):
        raise DataError("'boxes' must be a list", path)
    for box in boxes:
        if not isinstance(box, dict) or not all(is_finite_number(box.get(k)) for k in _BOX_KEYS):
            raise DataError(f"each box needs finite numbers {', '.join(_BOX_KEYS)}, got {str(box)[:120]}", path)
        if not (box["x2"] > box["x1"] and box["y2"] > box["y1"]):
            raise DataError(f"a box must have x2 > x1 and y2 > y1, got {str(box)[:120]}", path)
    return content


class SavedMaps:
    """Callable ``record -> MapPrediction`` over a folder of saved maps (see the module docstring)."""

    def __init__(self, maps_dir: str | os.PathLike) -> None:
        self.maps_dir = Path(maps_dir)
        if not self.maps_dir.is_dir():
            raise DataError("maps folder not found", self.maps_dir)

    def info(self) -> dict[str, str]:
        """Description of the method for ``metrics.json``."""
        return {"kind": "saved maps", "maps_dir": str(self.maps_dir.resolve())}

    def __call__(self, record: ManifestRecord) -> MapPrediction:
        path = find_map(self.maps_dir, record.key)
        heatmap = read_array(path)
        image, _ = load_cxr(record.image)
        if heatmap.shape != image.shape:
            raise DataError(f"map is {heatmap.shape[0]} x {heatmap.shape[1]} but image {record.image} is "
                            f"{image.shape[0]} x {image.shape[1]} (rows x cols); save maps in the source pixel grid",
                            path)
        sidecar = _read_sidecar(self.maps_dir / f"{record.key}.json")
        score = sidecar.get("score")
        boxes = [{k: float(box[k]) for k in _BOX_KEYS} for box in sidecar.get("boxes") or []]
        return MapPrediction(image=image, heatmap=heatmap, score=float(heatmap.max() if score is None else score), boxes=boxes)
