"""The per-instance output tree of a batch run, and what makes an instance's outputs complete.

``OUT/<study uid>/<series uid>/<sop uid>/`` (names from :func:`~PilletGANLib.dicom.uid_path`, never
header text) holds ``seg.dcm`` (BINARY lesion mask), optionally ``heatmap_seg.dcm`` (FRACTIONAL heat
map) and ``overlay.png``, and ``result.json``, written last: it lists the other files, so an instance is
complete exactly when its ``result.json`` exists and every file it lists exists. Every file is written
under a temporary name and renamed; a killed run can leave such temporaries, which
:func:`remove_temporaries` deletes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..dicom import Algorithm, DicomInstance, uid_path, write_heatmap_seg, write_lesion_seg
from ..inference import LesionResult
from ..outputs import overlay_caption, write_overlay_png, write_record_json
from ..version import __version__

__all__ = [
    "OUTPUT_NAMES",
    "RESULT_NAME",
    "InstanceUIDs",
    "OutputPlan",
    "batch_algorithm",
    "clear_instance",
    "instance_folder",
    "is_temporary",
    "read_complete_record",
    "remove_temporaries",
    "write_instance_outputs",
]

logger = logging.getLogger(__name__)

#: Output kind -> file name inside the instance folder.
OUTPUT_NAMES = {"seg": "seg.dcm", "heatmap_seg": "heatmap_seg.dcm", "overlay": "overlay.png"}
#: The record written last; its presence (with the files it lists) marks the instance complete.
RESULT_NAME = "result.json"

#: Temporary names: the SEG writer's ``.<name>.<pid>.<hex>.tmp`` and ``atomic_path``'s ``.<name>.<hex12>.partial[.ext]``.
_TEMPORARY = (re.compile(r"^\..+\.[0-9]+\.[0-9a-f]+\.tmp$"), re.compile(r"^\..+\.[0-9a-f]{12}\.partial(\.[A-Za-z0-9.]+)?$"))


class InstanceUIDs(Protocol):
    """What names an instance's output folder: a :class:`~PilletGANLib.dicom.DicomInstance`, or an instance
    listed by a PACS before it is retrieved."""

    @property
    def study_instance_uid(self) -> str: ...
    @property
    def series_instance_uid(self) -> str: ...
    @property
    def sop_instance_uid(self) -> str: ...


@dataclass(frozen=True)
class OutputPlan:
    """Which optional outputs a run writes besides ``seg.dcm`` and ``result.json``."""

    heatmap_seg: bool = False
    png: bool = False

    @property
    def kinds(self) -> tuple[str, ...]:
        """Output kinds (keys of :data:`OUTPUT_NAMES`) every instance must have."""
        return ("seg",) + ("heatmap_seg",) * self.heatmap_seg + ("overlay",) * self.png


def instance_folder(out_dir: str | os.PathLike, instance: InstanceUIDs) -> Path:
    """``out_dir/<study>/<series>/<sop>`` with every UID sanitized by :func:`~PilletGANLib.dicom.safe_uid_name`."""
    return uid_path(out_dir, instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)


def batch_algorithm(model_sha256: str | None, threshold: float, model_name: str | None = None,
                    model_version: str | None = None) -> Algorithm:
    """The SEG's algorithm identification: PilletGAN's version plus the weights, threshold and model as parameters.

    The version carries the first 12 hex digits of the weights' SHA-256, so SEGs of different models get
    different (derived) series and instance UIDs.
    """
    parameters = {"model_sha256": model_sha256 or "unknown", "threshold": repr(float(threshold))}
    if model_name:
        parameters["model_name"] = str(model_name)
    if model_version:
        parameters["model_version"] = str(model_version)
    version = f"{__version__}+{model_sha256[:12]}" if model_sha256 else __version__
    return Algorithm(name="PilletGAN", version=version, parameters=parameters)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file name of a PilletGAN writer (left behind only by a killed process)."""
    return any(pattern.match(name) for pattern in _TEMPORARY)


def remove_temporaries(root: str | os.PathLike) -> int:
    """Delete every temporary file under ``root`` (links not followed); returns how many."""
    removed = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if is_temporary(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run under %s", removed, root)
    return removed


def clear_instance(folder: Path, root: Path | None = None) -> None:
    """Delete an instance's outputs (record first) and temporaries; the folder too when nothing else is left,
    and then its series and study folders up to ``root`` when they are left empty."""
    if not folder.is_dir():
        return
    (folder / RESULT_NAME).unlink(missing_ok=True)
    for entry in folder.iterdir():
        if entry.name in OUTPUT_NAMES.values() or is_temporary(entry.name):
            entry.unlink(missing_ok=True)
    empty = folder
    while root is None or (empty != root and _inside(empty, root)):
        try:
            empty.rmdir()
        except OSError:  # not empty: files that are not ours, or other instances, stay
            return
        if root is None:
            return
        empty = empty.parent


def _inside(path: Path, root: Path) -> bool:
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def read_complete_record(folder: Path, instance: InstanceUIDs, kinds: Iterable[str], model_sha256: str | None,
                         threshold: float, detection_threshold: float | None = None) -> dict[str, Any] | None:
    """The instance's ``result.json`` when its outputs are complete and current, else ``None``.

    Complete and current: the record parses, is about ``instance``, was made with the same weights
    (``model_sha256``), mask ``threshold`` and ``detection_threshold`` (so its ``finding`` is the model's call; a
    record written before findings existed has none and counts as made without one), lists every output kind in
    ``kinds``, and every file it lists exists.
    """
    try:
        record = json.loads((folder / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return None
    files = record["files"]
    current = (record.get("sop_instance_uid") == instance.sop_instance_uid
               and record.get("model_sha256") == model_sha256 and record.get("threshold") == threshold
               and record.get("detection_threshold") == detection_threshold)
    if not current or not set(kinds) <= set(files):
        return None
    if not all(_plain_name(name) and (folder / name).is_file() for name in files.values()):
        return None
    return record


def write_instance_outputs(folder: Path, instance: DicomInstance, result: LesionResult, plan: OutputPlan,
                           algorithm: Algorithm, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Write the instance's SEG(s), overlay and, last, ``result.json``; returns the record as written.

    Raises the writers' :class:`~PilletGANLib.errors.PilletGANError` subclasses; the caller clears the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {kind: OUTPUT_NAMES[kind] for kind in plan.kinds}
    write_lesion_seg(instance.path, result.mask, folder / files["seg"], algorithm=algorithm)
    if plan.heatmap_seg:
        write_heatmap_seg(instance.path, result.heatmap, folder / files["heatmap_seg"], algorithm=algorithm)
    if plan.png:
        write_overlay_png(result.image, result.heatmap, folder / files["overlay"], boxes=result.boxes,
                          threshold=result.threshold, caption=overlay_caption(result))
    record_path = write_record_json(result, folder / RESULT_NAME, files=files, extra=extra)
    return json.loads(record_path.read_text(encoding="utf-8"))
