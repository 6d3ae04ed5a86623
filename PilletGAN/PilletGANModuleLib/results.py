"""Read the result files of ``pilletgan infer`` and turn them into what the panel shows.

The CLI writes, per input, a JSON record listing its other files (``files``: output kind -> file name); the
panel loads the heat map NRRD (SimpleITK) and the ``.seg.nrrd`` mask with its segment metadata (slicerio).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["InferenceOutputs", "ResultFileError", "SegmentInfo", "box_roi_geometry", "find_result_record",
           "load_inference_outputs"]


class ResultFileError(RuntimeError):
    """The CLI's result files are missing, incomplete or inconsistent."""


@dataclass
class SegmentInfo:
    """Name, colour (RGB in [0, 1]) and Slicer terminology entry string of the lesion segment."""

    name: str
    color: tuple[float, float, float]
    terminology: str


@dataclass
class InferenceOutputs:
    """What the panel needs from one run: arrays are ``rows x cols`` in the input's pixel grid."""

    record: dict[str, Any]
    heatmap: np.ndarray
    mask: np.ndarray
    segment: SegmentInfo
    folder: Path
    boxes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        return self.record.get("score")

    @property
    def threshold(self) -> float:
        return float(self.record["threshold"])

    @property
    def min_component_fraction(self) -> float:
        return float(self.record.get("min_component_fraction") or 0.0)


def find_result_record(out_dir: str | os.PathLike) -> Path:
    """The one JSON record in ``out_dir`` (hidden partial files are ignored)."""
    records = sorted(p for p in Path(out_dir).glob("*.json") if not p.name.startswith("."))
    if len(records) != 1:
        raise ResultFileError(f"expected one result record (*.json) in {out_dir}, found {len(records)}")
    return records[0]


def _listed_file(record: Mapping[str, Any], kind: str, folder: Path, record_path: Path) -> Path:
    name = record.get("files", {}).get(kind)
    if not name or Path(name).name != name:
        raise ResultFileError(f"{record_path}: the record does not list a plain '{kind}' file name")
    path = folder / name
    if not path.is_file():
        raise ResultFileError(f"{path}: listed in {record_path.name} but missing")
    return path


def _read_heatmap(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ResultFileError(f"{path}: expected a one-slice heat map, got an array of shape {array.shape}")
    return array.astype(np.float32)


def _read_segment(path: Path) -> tuple[np.ndarray, SegmentInfo]:
    import slicerio
    from slicerio.segmentation import terminology_entry_to_string

    segmentation = slicerio.read_segmentation(str(path))
    voxels = segmentation["voxels"]
    if len(segmentation.get("segments", [])) != 1 or voxels.ndim != 3 or voxels.shape[2] != 1:
        raise ResultFileError(f"{path}: expected one segment on a one-slice grid, got "
                              f"{len(segmentation.get('segments', []))} segment(s) on voxels {voxels.shape}")
    segment = segmentation["segments"][0]
    mask = np.ascontiguousarray(slicerio.segment_mask(segmentation, segment)[:, :, 0].T)
    terminology = terminology_entry_to_string(segment["terminology"]) if "terminology" in segment else ""
    color = tuple(float(c) for c in segment.get("color", (1.0, 0.0, 0.0)))
    return mask, SegmentInfo(name=segment.get("name", "Lesion"), color=color, terminology=terminology)


def load_inference_outputs(out_dir: str | os.PathLike) -> InferenceOutputs:
    """Read the record, heat map NRRD and ``.seg.nrrd`` that ``pilletgan infer`` wrote into ``out_dir``.

    Raises:
        ResultFileError: a file is missing or the heat map and mask do not share one grid.
    """
    record_path = find_result_record(out_dir)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultFileError(f"{record_path}: not a readable JSON record ({err})") from err
    folder = record_path.parent
    heatmap = _read_heatmap(_listed_file(record, "heatmap_nrrd", folder, record_path))
    mask, segment = _read_segment(_listed_file(record, "seg_nrrd", folder, record_path))
    if mask.shape != heatmap.shape:
        raise ResultFileError(f"{folder}: heat map {heatmap.shape} and mask {mask.shape} differ in shape")
    if "threshold" not in record:
        raise ResultFileError(f"{record_path}: the record has no threshold")
    return InferenceOutputs(record=record, heatmap=heatmap, mask=mask, segment=segment, folder=folder,
                            boxes=list(record.get("boxes") or []))


def box_roi_geometry(box: Mapping[str, float], ijk_to_ras: Sequence[Sequence[float]] | np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (RAS), side lengths (mm) and axes (3x3, unit column vectors) of an ROI covering ``box``.

    ``box`` holds ``x1, y1, x2, y2`` in source pixels with exclusive ends (pixel ``i`` covers ``[i, i + 1)``);
    voxel centres sit at integer IJK, so the box spans ``[x1 - 0.5, x2 - 0.5]`` in I and likewise in J, and one
    voxel in K.
    """
    matrix = np.asarray(ijk_to_ras, dtype=float)
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    centre_ijk = np.array([(x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5, 0.0, 1.0])
    columns = matrix[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    axes = columns / spacing
    size = np.array([x2 - x1, y2 - y1, 1.0]) * spacing
    return (matrix @ centre_ijk)[:3], size, axes
