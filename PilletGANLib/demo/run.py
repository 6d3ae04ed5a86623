"""The one-command demo: build the sample study, run the model on it as ``pilletgan batch`` does, show the result.

``DIR/sample_study/`` is the export (the phantom as a DICOM CR file), ``DIR/truth/`` its ground truth
(``truth.json``, ``truth_mask.png``), ``DIR/results/`` the batch run's output tree and reports,
``DIR/index.html`` the page that shows it all and ``DIR/demo.json`` the demo's own record. The
lesion map is scored with the pointing game (its maximum inside the known opacity) as ``pilletgan
evaluate`` scores it, on the unclipped map (the heat map saturates at 1 over a strong opacity and a
plateau has no single peak); the batch's FRACTIONAL SEG is read back for the heat shown at that peak,
and the binary SEG's Dice against the opacity is reported.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from ..batch import BatchSummary, InstanceRecord, Status, run_batch
from ..errors import ConfigurationError, OutputError
from ..inference import Predictor
from ..metrics import dice, pointing_game
from ..outputs import NO_FINDING, atomic_path, json_ready
from .phantom import DEFAULT_SIZE
from .report import write_demo_index
from .study import SampleStudy, write_sample_study

__all__ = ["DEMO_RECORD", "DEMO_SEED", "DemoSummary", "PointingGame", "read_seg_frame", "run_demo"]

logger = logging.getLogger(__name__)

#: The demo's phantom: seed 2 puts a consolidation in the right lower zone, clear of the heart border and the
#: diaphragm, where it is unambiguous (an opacity against the heart border is a harder, silhouetted case).
DEMO_SEED = 2
#: The demo's record; its presence marks a folder as a demo folder the next run may rebuild.
DEMO_RECORD = "demo.json"
#: What a demo run writes in its folder (removed before a rerun in the same folder).
_DEMO_ENTRIES = ("sample_study", "truth", "results", "index.html", DEMO_RECORD)


@dataclass(frozen=True)
class PointingGame:
    """Where the lesion map peaks (first maximum in row-major order, as in :func:`PilletGANLib.metrics.pointing_game`),
    the heat the heat-map SEG shows there, and whether that pixel lies inside the known opacity."""

    peak_x: int
    peak_y: int
    peak_heat: float
    hit: bool

    @classmethod
    def of(cls, lesion_map: np.ndarray, heatmap: np.ndarray, truth: np.ndarray) -> PointingGame:
        """``lesion_map``: the unclipped map that is ranked; ``heatmap``: the SEG's heat map on the same grid."""
        if lesion_map.shape != heatmap.shape:
            raise ValueError(f"lesion map {lesion_map.shape} and heat map {heatmap.shape} differ in shape")
        row, col = np.unravel_index(int(np.argmax(lesion_map)), lesion_map.shape)
        return cls(int(col), int(row), float(heatmap[row, col]), pointing_game(lesion_map, truth))


@dataclass
class DemoSummary:
    """What the demo did and where its files are.

    Attributes:
        out_dir: the demo folder.
        study: the sample study (export, DICOM file, ground truth).
        batch: the batch run's summary.
        record: the phantom's record in the batch run (``None`` when the batch did not select it).
        pointing: the pointing game on the phantom's unclipped lesion map, with the heat ``heatmap_seg.dcm`` shows at
            its peak (``None`` when the analysis failed).
        mask_dice: Dice of the binary SEG's mask against the opacity (``None`` when it failed).
        index_html: the demo page.
    """

    out_dir: Path
    study: SampleStudy
    batch: BatchSummary
    record: InstanceRecord | None
    pointing: PointingGame | None
    mask_dice: float | None
    index_html: Path

    @property
    def record_json(self) -> Path:
        return self.out_dir / DEMO_RECORD

    @property
    def succeeded(self) -> bool:
        return self.record is not None and self.record.status is not Status.FAILED

    @property
    def exit_code(self) -> int:
        """0 when the phantom was analysed and every output written, else 1."""
        return 0 if self.succeeded and self.batch.exit_code == 0 else 1

    def files(self) -> dict[str, Path]:
        """Every file worth opening, by kind (result files only when the phantom was analysed)."""
        files = {"index": self.index_html, "dicom": self.study.dicom_path, "truth_json": self.study.truth_json_path,
                 "truth_mask": self.study.truth_mask_path, "summary_csv": self.batch.summary_csv,
                 "errors_csv": self.batch.errors_csv, "skipped_csv": self.batch.skipped_csv,
                 "run_json": self.batch.run_json, "demo_json": self.record_json}
        if self.record is not None:
            files.update({kind: self.batch.out_dir / name for kind, name in self.record.files.items()})
        return files

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content of ``demo.json`` (paths relative to the demo folder)."""
        return json_ready({
            "status": "finished",
            "exit_code": self.exit_code,
            "score": None if self.record is None else self.record.score,
            "finding": None if self.record is None else self.record.finding,
            "threshold": None if self.record is None else self.record.threshold,
            "boxes": [] if self.record is None else self.record.boxes,
            "error": None if self.record is None else self.record.error,
            "pointing_game": None if self.pointing is None else self.pointing.__dict__,
            "mask_dice": self.mask_dice,
            "truth": self.study.truth["opacity"],
            "model": self.batch.model,
            "files": {kind: os.path.relpath(path, self.out_dir) for kind, path in self.files().items()},
        })

    def describe(self) -> str:
        """A few lines for the terminal: the result and where everything is."""
        lines = []
        if self.record is None:
            lines.append("The batch run did not select the phantom; see " + str(self.batch.skipped_csv))
        elif self.record.status is Status.FAILED:
            lines.append(f"The phantom could not be analysed: {self.record.error}")
        else:
            finding = self.record.finding or f"finding {NO_FINDING}"
            lines.append(f"Detection score {self.record.score:.4f} ({finding}); {len(self.record.boxes)} box(es) where "
                         f"the heat map reaches {self.record.threshold:.4f}.")
        if self.pointing is not None:
            verdict = "inside" if self.pointing.hit else "OUTSIDE"
            lines.append(f"Lesion-map peak at (x={self.pointing.peak_x}, y={self.pointing.peak_y}): {verdict} the known "
                         f"opacity (pointing game {'hit' if self.pointing.hit else 'miss'}); mask Dice "
                         f"{self.mask_dice:.3f}.")
        width = max(len(kind) for kind in self.files())
        lines.append("Files:")
        lines.extend(f"  {kind:<{width}}  {path}" for kind, path in self.files().items() if path.exists())
        lines.append(f"Open {self.index_html} in a browser.")
        return "\n".join(lines)


def read_seg_frame(path: str | os.PathLike) -> np.ndarray:
    """The single frame of a PilletGAN SEG: a bool mask (BINARY) or a float map in [0, 1] (FRACTIONAL)."""
    try:
        ds = pydicom.dcmread(path)
        frame = np.asarray(ds.pixel_array)
    except Exception as err:  # pydicom raises many types for a damaged file
        raise OutputError(f"the SEG written by the batch cannot be read back ({type(err).__name__}: {err})", path) from err
    frame = frame.reshape(int(ds.Rows), int(ds.Columns))
    if str(ds.SegmentationType) == "FRACTIONAL":
        return frame.astype(np.float32) / float(ds.MaximumFractionalValue)
    return frame.astype(bool)


def _prepare_folder(out_dir: Path) -> None:
    """Create ``out_dir``, or empty a previous demo's entries in it; refuse any other non-empty folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("the demo folder path exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / DEMO_RECORD).is_file():
            raise ConfigurationError(f"the demo folder {out_dir} is not empty and holds no earlier demo "
                                     f"({DEMO_RECORD}); choose an empty or new folder")
        for name in _DEMO_ENTRIES:
            entry = out_dir / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"the demo folder cannot be created ({err.strerror or err})", out_dir) from err


def _write_record(out_dir: Path, record: dict[str, Any]) -> None:
    with atomic_path(out_dir / DEMO_RECORD) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _phantom_record(batch: BatchSummary, study: SampleStudy) -> InstanceRecord | None:
    uid = study.truth["sop_instance_uid"]
    return next((r for r in batch.records if r.sop_instance_uid == uid), None)


def run_demo(out_dir: str | os.PathLike, model: str | os.PathLike | None = None, device: str = "auto",
             progress: bool = True, *, size: tuple[int, int] = DEFAULT_SIZE, seed: int = DEMO_SEED) -> DemoSummary:
    """Build the sample study in ``out_dir``, localize it with ``pilletgan batch``'s runner, write ``index.html``.

    Args:
        out_dir: the demo folder: new, empty, or an earlier demo's folder (whose demo files are replaced).
        model: model ``.pt`` with its card; ``None`` is the shipped default model.
        device: ``auto``, ``cpu``, ``cuda``, ...
        progress: progress bars.
        size: the phantom's ``(rows, columns)``.
        seed: the phantom's seed.

    Raises:
        PilletGANError: the folder cannot be used, the model cannot be loaded, or the batch cannot start.
    """
    out_dir = Path(os.path.abspath(out_dir))
    predictor = Predictor.from_path(model, device=device)
    _prepare_folder(out_dir)
    _write_record(out_dir, {"status": "running"})  # marks the folder as a demo folder, so a failed run can be redone
    logger.info("building the sample study (a %dx%d synthetic chest radiograph phantom)", *size)
    study = write_sample_study(out_dir / "sample_study", out_dir / "truth", size=size, seed=seed)
    batch = run_batch(study.export_dir, out_dir / "results", predictor, heatmap_seg=True, png=True, progress=progress)
    record = _phantom_record(batch, study)
    pointing, mask_dice = None, None
    if record is not None and record.status is not Status.FAILED:
        truth = study.phantom.opacity_mask
        lesion_map = predictor.predict_path(study.dicom_path).difference
        pointing = PointingGame.of(lesion_map, read_seg_frame(batch.out_dir / record.files["heatmap_seg"]), truth)
        mask_dice = dice(read_seg_frame(batch.out_dir / record.files["seg"]), truth)
    summary = DemoSummary(out_dir, study, batch, record, pointing, mask_dice, out_dir / "index.html")
    write_demo_index(summary)
    _write_record(out_dir, summary.to_dict())
    return summary
