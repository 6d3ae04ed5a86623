"""``run_batch``: localize every chest radiograph of a PACS export and write DICOM SEG, overlay and JSON per image.

One run: check the paths (the export is only read; the output folder must be outside it, and empty
unless resuming), discover the export (headers only), deal the selected radiographs across ranks,
decode them in DataLoader worker processes, run the model in batches, write each instance's outputs
(``result.json`` last, in a writer thread while the next batch runs) and, on rank 0, the run-level
reports. A file that cannot be read, analysed or written is recorded and the run goes on.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..dicom import DicomInstance, DiscoveryResult, SelectionRules, discover
from ..errors import ConfigurationError, FileNotFoundInputError, OutputError, PilletGANError, error_kind, error_reason
from ..inference import LesionResult, Predictor
from .failures import FailureJournal, RememberedFailure, forget_failures
from .outputs import (
    RESULT_NAME,
    OutputPlan,
    batch_algorithm,
    clear_instance,
    instance_folder,
    read_complete_record,
    remove_temporaries,
    write_instance_outputs,
)
from .records import BatchSummary, FileProblem, InstanceRecord, Status
from .report import write_reports
from .sharding import PARTS_FOLDER, RankGroup, exchange_parts, shard

__all__ = ["InstanceWorker", "check_output_folder", "check_run_paths", "model_identity", "predictions", "predictor_settings",
           "prepare_output_folder", "run_batch", "timestamp"]

logger = logging.getLogger(__name__)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_run_paths(input_dir: str | os.PathLike, out_dir: str | os.PathLike, resume: bool = False) -> None:
    """Refuse a run that must not start: no export folder, an output folder inside the export (or around it),
    an output path that is a file, or a non-empty output folder without ``resume``. Writes nothing.

    Raises:
        FileNotFoundInputError: ``input_dir`` does not exist.
        ConfigurationError: ``input_dir`` is not a folder, the folders nest, or ``out_dir`` is not empty.
        OutputError: ``out_dir`` exists and is not a folder.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if not input_dir.exists():
        raise FileNotFoundInputError("the export folder does not exist", input_dir)
    if not input_dir.is_dir():
        raise ConfigurationError(f"{input_dir} is not a folder; pilletgan batch walks an export folder "
                                 "(use pilletgan infer for single files)")
    real_in, real_out = os.path.realpath(input_dir), os.path.realpath(out_dir)
    if _within(real_out, real_in):
        raise ConfigurationError(f"the output folder {out_dir} is inside the export folder {input_dir}; the export "
                                 "is never written to: choose an output folder outside it")
    if _within(real_in, real_out):
        raise ConfigurationError(f"the export folder {input_dir} is inside the output folder {out_dir}; choose "
                                 "folders that do not contain each other")
    check_output_folder(out_dir, resume)


def check_output_folder(out_dir: str | os.PathLike, resume: bool = False) -> None:
    """Refuse an output path that is a file, or a non-empty output folder without ``resume``. Writes nothing.

    Raises:
        ConfigurationError: ``out_dir`` is not empty and ``resume`` is false.
        OutputError: ``out_dir`` exists and is not a folder, or cannot be listed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("the output path exists and is not a folder", out_dir)
    try:
        occupied = out_dir.is_dir() and any(out_dir.iterdir())
    except OSError as err:
        raise OutputError(f"the output folder cannot be listed ({err.strerror or err})", out_dir) from err
    if occupied and not resume:
        raise ConfigurationError(f"the output folder {out_dir} is not empty; pass --resume (resume=True) to continue "
                                 "the run in it (complete results are kept, the rest redone), or choose an empty folder")


def prepare_output_folder(out_dir: Path, resume: bool) -> None:
    """Create the (checked) output folder; when resuming, delete the temporaries an interrupted run left in it.

    Raises:
        OutputError: the folder cannot be created.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"the output folder cannot be created ({err.strerror or err})", out_dir) from err
    if resume:
        remove_temporaries(out_dir)


def _start(input_dir: Path, out_dir: Path, rules: SelectionRules, resume: bool, retry_failed: bool,
           progress: bool, predictor: Predictor) -> tuple[DiscoveryResult, float]:
    """Rank 0's first step: check the paths, prepare the output folder, discover the export (the predictor warming
    up meanwhile)."""
    check_run_paths(input_dir, out_dir, resume)
    predictor.warm_up()
    prepare_output_folder(out_dir, resume)
    if resume:
        shutil.rmtree(out_dir / PARTS_FOLDER, ignore_errors=True)  # parts of an interrupted distributed run
        if retry_failed:
            forget_failures(out_dir)
    clock = time.perf_counter()
    discovery = discover(input_dir, rules, progress=progress)
    return discovery, time.perf_counter() - clock


def _relative(path: Path, folder: Path) -> str:
    return os.path.relpath(path, folder) if _within(str(path), str(folder)) else str(path)


def _predict_one(predictor: Predictor, path: Path) -> LesionResult | Exception:
    try:
        return predictor.predict_path(path)
    except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is recorded and the run goes on
        return err


def predictions(predictor: Predictor, paths: Sequence[Path], source_images: bool = True
                ) -> Iterator[tuple[Path, LesionResult | Exception]]:
    """``(path, result or error)`` for every path, in order, decoding in the predictor's worker processes
    (``source_images``: see :meth:`~PilletGANLib.inference.Predictor.predict_paths`).

    Should a whole batch fail (an exception outside the reader's errors, e.g. out of memory), its
    files are redone one at a time in this process, each failure recorded, and the stream resumes after it.
    """
    remaining = list(paths)
    while remaining:
        done = 0
        try:
            for path, outcome in predictor.predict_paths(remaining, source_images=source_images):
                done += 1
                yield path, outcome
            return
        except Exception as err:  # noqa: BLE001 - a failing batch is retried file by file instead of ending the run
            logger.warning("a batch failed (%s: %s); retrying its files one at a time", type(err).__name__, err)
        failing = remaining[done: done + predictor.batch_size]
        for path in failing:
            yield path, _predict_one(predictor, path)
        remaining = remaining[done + len(failing):]


class InstanceWorker:
    """Turns instances into outputs and records: one rank's share of a batch run, or the radiographs that the
    PACS front doors (:mod:`PilletGANLib.pacs`) retrieve or receive.

    ``source_of`` names an instance's source in the records (default: its path relative to ``input_dir``).
    ``journal`` remembers failures so that a resumed run reports them again without reading the file (see
    :mod:`~PilletGANLib.batch.failures`); ``None`` remembers nothing (the listener: a sender's new C-STORE is a
    new attempt).
    """

    def __init__(self, predictor: Predictor, input_dir: Path, out_dir: Path, plan: OutputPlan,
                 source_of: Callable[[Any], str] | None = None, journal: FailureJournal | None = None) -> None:
        self.predictor, self.input_dir, self.out_dir, self.plan = predictor, input_dir, out_dir, plan
        self.source_of = source_of or (lambda instance: _relative(instance.path, self.input_dir))
        self.sha256 = predictor.card.get("sha256")
        self.threshold = float(predictor.localizer.calibration.threshold)
        self.detection_threshold = predictor.localizer.calibration.detection_threshold
        self.algorithm = batch_algorithm(self.sha256, self.threshold, predictor.card.get("name"),
                                         predictor.card.get("version"))
        self.journal = journal

    def record(self, instance: DicomInstance, status: Status, result: dict[str, Any] | None = None,
               error: str | None = None) -> InstanceRecord:
        files: dict[str, str] = {}
        if result is not None:
            folder = _relative(instance_folder(self.out_dir, instance), self.out_dir)
            files = {kind: os.path.join(folder, name) for kind, name in result["files"].items()}
            files["result"] = os.path.join(folder, RESULT_NAME)
        return InstanceRecord(instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid,
                              self.source_of(instance), status,
                              score=None if result is None else result.get("score"),
                              finding=None if result is None else result.get("finding"),
                              threshold=None if result is None else result.get("threshold"),
                              boxes=[] if result is None else list(result.get("boxes") or []), files=files, error=error,
                              warnings=[] if result is None else list(result.get("warnings") or []))

    def finish(self, instance: DicomInstance, outcome: LesionResult | Exception
               ) -> tuple[InstanceRecord, FileProblem | None]:
        """Write one instance's outputs; a failure leaves no partial files and becomes a problem row."""
        source = self.source_of(instance)
        stage, error = "inference", outcome
        if isinstance(outcome, LesionResult):
            folder = instance_folder(self.out_dir, instance)
            extra = {"source": source, "study_instance_uid": instance.study_instance_uid,
                     "series_instance_uid": instance.series_instance_uid, "sop_instance_uid": instance.sop_instance_uid,
                     "algorithm": {"name": self.algorithm.name, "version": self.algorithm.version},
                     "min_component_fraction": self.predictor.localizer.recipe.min_component_fraction}
            try:
                written = write_instance_outputs(folder, instance, outcome, self.plan, self.algorithm, extra)
                return self.record(instance, Status.SUCCEEDED, written), None
            except Exception as err:  # noqa: BLE001 - one instance's outputs failing must not stop the run
                clear_instance(folder, self.out_dir)
                stage, error = "output", err
        kind, reason = error_kind(error), error_reason(error)
        logger.warning("%s: %s failed (%s): %s", source, stage, kind, reason)
        if self.journal is not None:
            self.journal.record(instance, source, stage, kind, reason)
        return self.failed(instance, source, stage, kind, reason)

    def failed(self, instance: DicomInstance, source: str, stage: str, kind: str, reason: str
               ) -> tuple[InstanceRecord, FileProblem]:
        return (self.record(instance, Status.FAILED, error=f"{stage}: {reason}"),
                FileProblem(source, stage, kind, reason, error=True))

    def remembered(self, instance: DicomInstance, failure: RememberedFailure) -> tuple[InstanceRecord, FileProblem]:
        """A failure of an earlier run, reported again without reading the file."""
        reason = f"{failure.reason} (remembered from an earlier run; --retry-failed tries it again)"
        return self.failed(instance, failure.source, failure.stage, failure.kind, reason)

    def run(self, instances: Sequence[DicomInstance], resume: bool, progress: bool, label: str) -> dict[str, Any]:
        """Process ``instances``; returns this rank's part (records, problems, timing) in JSON-ready form."""
        records: list[InstanceRecord] = []
        problems: list[FileProblem] = []
        todo: list[DicomInstance] = []
        earlier = self.journal.remembered() if resume and self.journal is not None else {}
        for instance in instances:
            folder = instance_folder(self.out_dir, instance)
            done = read_complete_record(folder, instance, self.plan.kinds, self.sha256, self.threshold,
                                        self.detection_threshold) \
                if resume else None
            failure = earlier.get(instance.sop_instance_uid)
            if done is not None:
                records.append(self.record(instance, Status.ALREADY_DONE, done))
            elif self.journal is not None and self.journal.matches(failure, instance, self.source_of(instance)):
                record, problem = self.remembered(instance, failure)
                records.append(record)
                problems.append(problem)
            else:
                clear_instance(folder, self.out_dir)
                todo.append(instance)
        if records:
            logger.info("%s: %d instance(s) already complete or failed before, %d to do", label,
                        len(records), len(todo))
        clock = time.perf_counter()
        by_path = {instance.path: instance for instance in todo}
        with logging_redirect_tqdm(), tqdm(total=len(instances), initial=len(records), desc=label, unit="image",
                                           disable=not progress, dynamic_ncols=True) as bar, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="pilletgan-writer") as writer:
            # one writer thread, in input order, while the model runs the next batch (it releases the GIL); at
            # most one batch of results waits for it, so memory stays bounded
            pending: deque[Future] = deque()

            def collect(future: Future) -> None:
                record, problem = future.result()
                records.append(record)
                if problem is not None:
                    problems.append(problem)
                    bar.set_postfix(failed=len(problems))
                bar.update(1)

            # the source images come back from the readers only for the overlays
            for path, outcome in predictions(self.predictor, [i.path for i in todo], self.plan.png):
                pending.append(writer.submit(self.finish, by_path[path], outcome))
                while pending and (len(pending) > self.predictor.batch_size or pending[0].done()):
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        return {"records": [r.to_dict() for r in records], "problems": [p.to_dict() for p in problems],
                "inference_s": time.perf_counter() - clock, "processed": len(todo)}


def _discovery_problems(discovery: DiscoveryResult) -> list[FileProblem]:
    return [FileProblem(_relative(s.path, discovery.root), "discovery", s.kind.value, s.reason, error=bool(s.error))
            for s in discovery.skipped]


def timestamp() -> str:
    """Now, in local time with its UTC offset, to the second (``run.json``'s ``started`` and ``finished``)."""
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def run_batch(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    predictor: Predictor,
    *,
    rules: SelectionRules | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    heatmap_seg: bool = False,
    png: bool = False,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> BatchSummary:
    """Localize every radiograph ``rules`` select in the export ``input_dir``; write results into ``out_dir``.

    Per instance, in ``out_dir/<study uid>/<series uid>/<sop uid>/``: ``seg.dcm`` (BINARY lesion mask, source
    grid, referencing the source), ``heatmap_seg.dcm`` (FRACTIONAL, with ``heatmap_seg``), ``overlay.png``
    (with ``png``) and ``result.json`` (written last). Run-level, in ``out_dir``: ``summary.csv``,
    ``errors.csv``, ``skipped.csv`` and ``run.json`` (see :mod:`PilletGANLib.batch.report`).

    Args:
        input_dir: the export folder; only read.
        out_dir: the output folder: outside ``input_dir``, empty or absent unless ``resume``.
        predictor: the model (its ``num_workers`` decode files in worker processes, ``batch_size`` per pass).
        rules: which images to analyse (default: Modality CR or DX).
        resume: keep complete, current instances (same weights and threshold, every listed file present),
            report the instances that failed before (same source file) as failed again without reading them,
            redo the others; temporaries of an interrupted run are removed.
        retry_failed: with ``resume``, forget earlier failures and try those instances again.
        heatmap_seg: also write the heat map as a FRACTIONAL SEG.
        png: also write an overlay PNG.
        progress: progress bars (discovery, then images with rate and ETA).
        rank: this process's rank (``torchrun``'s ``RANK``).
        world_size: number of processes; above 1 the ranks meet in a gloo process group.

    Returns:
        The run's :class:`BatchSummary` (the same on every rank); ``exit_code`` 0 or 1.

    Raises:
        PilletGANError: the run cannot start (see :func:`check_run_paths`) or its reports cannot be written.
    """
    clock, started = time.perf_counter(), timestamp()
    input_dir, out_dir = Path(os.path.abspath(input_dir)), Path(os.path.abspath(out_dir))
    rules = rules or SelectionRules()
    plan = OutputPlan(heatmap_seg=heatmap_seg, png=png)
    with RankGroup(rank, world_size) as group:
        start: tuple[DiscoveryResult, float] | PilletGANError | None = None
        if group.is_main:
            try:
                start = _start(input_dir, out_dir, rules, resume, retry_failed, progress, predictor)
            except PilletGANError as err:
                start = err
        start = group.broadcast(start)
        if isinstance(start, PilletGANError):
            raise start
        discovery, discovery_s = start
        label = "batch" if world_size == 1 else f"batch rank {rank}/{world_size}"
        worker = InstanceWorker(predictor, input_dir, out_dir, plan, journal=FailureJournal(out_dir, rank))
        part = worker.run(shard(discovery.instances, rank, world_size), resume, progress, label)
        parts = exchange_parts(group, out_dir, part)
        summary = None
        if parts is not None:
            settings = {"input_dir": str(input_dir), "out_dir": str(out_dir), "selection": str(rules), "resume": resume,
                        "retry_failed": retry_failed, "heatmap_seg": heatmap_seg, "png": png, "world_size": world_size,
                        **predictor_settings(predictor)}
            summary = _merge(parts, discovery, discovery_s, out_dir, settings, model_identity(predictor), started, clock)
            write_reports(summary)
        summary = group.broadcast(summary)
    return summary


def predictor_settings(predictor: Predictor) -> dict[str, Any]:
    """The predictor's run settings for ``run.json``: device, backend, bf16, batch size, workers, thresholds."""
    return {"device": str(predictor.device), "backend": predictor.backend, "bf16": predictor.bf16,
            "batch_size": predictor.batch_size,
            "workers": predictor.num_workers, "threshold": predictor.localizer.calibration.threshold,
            "detection_threshold": predictor.localizer.calibration.detection_threshold,
            "detection_specificity": predictor.localizer.calibration.detection_specificity}


def model_identity(predictor: Predictor) -> dict[str, Any]:
    """The model's path, SHA-256, name and version for ``run.json``."""
    return {key: predictor.card.get(key) for key in ("path", "sha256", "name", "version")}


def _merge(parts: list[dict[str, Any]], discovery: DiscoveryResult, discovery_s: float, out_dir: Path,
           settings: dict[str, Any], model: dict[str, Any], started: str, clock: float) -> BatchSummary:
    """The run's summary from every rank's part (rank 0)."""
    records = sorted((InstanceRecord.from_dict(r) for part in parts for r in part["records"]),
                     key=lambda r: (r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid))
    failures = sorted((FileProblem(**p) for part in parts for p in part["problems"]), key=lambda p: p.file)
    inference_s = max(part["inference_s"] for part in parts)
    processed = sum(part["processed"] for part in parts)
    return BatchSummary(
        input_dir=discovery.root,
        out_dir=out_dir,
        records=records,
        problems=_discovery_problems(discovery) + failures,
        settings=settings,
        model=model,
        timings={"discovery_s": discovery_s, "inference_s": inference_s, "total_s": time.perf_counter() - clock,
                 "instances_processed": processed,
                 "instances_per_s": processed / inference_s if processed and inference_s > 0 else None,
                 "inference_s_per_rank": [part["inference_s"] for part in parts]},
        started=started,
        finished=timestamp(),
    )
