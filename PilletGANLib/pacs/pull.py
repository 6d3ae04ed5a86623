"""``run_pacs``: pull the selected radiographs from a DICOMweb PACS, analyse them as ``batch`` does, push the SEGs.

One run: check the output folder, query the PACS (QIDO-RS), keep the instances whose outputs are
already complete (``resume``), retrieve the others (WADO-RS, a few at a time in background threads,
each straight into ``OUT/retrieved/``) while the model analyses those already retrieved, write each
instance's outputs with the batch machinery, and with ``push`` store each SEG in the PACS (STOW-RS)
unless the PACS already holds it. A retrieved image is deleted once analysed (``keep_images`` keeps
it); an interrupted run leaves the images it retrieved, which ``--resume`` uses instead of retrieving
them again. An instance that was retrieved but could not be analysed (a broken or unsupported image, a failed
analysis or output) is remembered in ``OUT/failures/`` as ``batch`` remembers it: ``--resume`` reports it
failed again without retrieving it, ``--retry-failed`` tries it again. Failed retrievals and pushes are not
remembered (the network or the PACS may be back): ``--resume`` tries them again.

Idempotence: an instance's outputs are complete for one source SOP Instance UID and one model
checksum (``result.json``); the SEG's SOP Instance UID is derived from the same two, so the PACS is
asked whether it holds that UID before anything is stored: a rerun stores nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import pydicom
import requests
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..batch import (
    BatchSummary,
    FileProblem,
    InstanceRecord,
    InstanceUIDs,
    InstanceWorker,
    OutputPlan,
    Status,
    check_output_folder,
    instance_folder,
    model_identity,
    predictions,
    predictor_settings,
    prepare_output_folder,
    read_complete_record,
    timestamp,
    write_csv,
)
from ..batch.failures import FailureJournal, forget_failures, pacs_signature
from ..batch.outputs import clear_instance
from ..batch.report import write_reports
from ..dicom import DicomInstance, SelectionRules, examine_file, safe_uid_name, uid_path
from ..errors import OutputError, PacsError, error_kind, error_reason
from ..inference import Predictor
from .dicomweb import DicomwebPacs, PacsQuery, RemoteInstance

__all__ = ["PUSH_COLUMNS", "RETRIEVED_FOLDER", "PushOutcome", "resource_of", "retrieved_path", "run_pacs"]

logger = logging.getLogger(__name__)

#: Sub-folder of the output folder holding retrieved images until they are analysed.
RETRIEVED_FOLDER = "retrieved"
#: Columns of ``push.csv``.
PUSH_COLUMNS = ("study_instance_uid", "sop_instance_uid", "seg_sop_instance_uids", "status", "detail")


def resource_of(instance: InstanceUIDs) -> str:
    """The instance's WADO-RS path below the service root: its ``source`` in the records."""
    return (f"studies/{instance.study_instance_uid}/series/{instance.series_instance_uid}"
            f"/instances/{instance.sop_instance_uid}")


def retrieved_path(cache: Path, instance: InstanceUIDs) -> Path:
    """Where a retrieved image is kept until analysed: ``cache/<study>/<series>/<sop>.dcm`` (UID-safe names)."""
    return uid_path(cache, instance.study_instance_uid, instance.series_instance_uid) / \
        f"{safe_uid_name(instance.sop_instance_uid)}.dcm"


@dataclass
class PushOutcome:
    """What happened to one instance's SEG(s) on the PACS: ``stored``, ``already_in_pacs`` or ``failed``."""

    study_instance_uid: str
    sop_instance_uid: str
    seg_sop_instance_uids: list[str]
    status: str
    detail: str = ""

    def row(self) -> dict[str, str]:
        return {**asdict(self), "seg_sop_instance_uids": " ".join(self.seg_sop_instance_uids)}


@dataclass
class _Retrieval:
    """One instance's retrieval: the file, or why there is none."""

    remote: RemoteInstance
    path: Path | None = None
    error: Exception | None = None
    size: int = 0
    seconds: float = 0.0
    reused: bool = False


def _is_fatal(err: PacsError) -> bool:
    """Whether a failed query says the PACS cannot be used at all (unreachable, credentials refused)."""
    cause = err.__cause__
    if isinstance(cause, requests.HTTPError) and cause.response is not None:
        return cause.response.status_code in (401, 403, 407)
    return isinstance(cause, requests.ConnectionError | requests.Timeout)


@dataclass
class _Pusher:
    """Stores SEGs the PACS does not hold yet; remembers what each study holds."""

    pacs: DicomwebPacs
    out_dir: Path
    outcomes: list[PushOutcome] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    seconds: float = 0.0
    _held: dict[str, set[str]] = field(default_factory=dict)

    def push(self, record: InstanceRecord) -> None:
        clock = time.perf_counter()
        files = [self.out_dir / record.files[kind] for kind in ("seg", "heatmap_seg") if kind in record.files]
        uids = [str(pydicom.dcmread(path, specific_tags=["SOPInstanceUID"]).SOPInstanceUID) for path in files]
        study = record.study_instance_uid
        outcome = PushOutcome(study, record.sop_instance_uid, uids, "already_in_pacs")
        try:
            if study not in self._held:
                self._held[study] = self.pacs.stored_instances(study, "SEG")
            missing = [path for path, uid in zip(files, uids, strict=True) if uid not in self._held[study]]
            if missing:
                self.pacs.store(missing, study)
                self._held[study].update(uids)
                outcome.status = "stored"
        except PacsError as err:
            outcome.status, outcome.detail = "failed", str(err)
            logger.warning("%s", err)
            self.problems.append(FileProblem(record.source, "push", error_kind(err), err.reason, error=True))
        self.outcomes.append(outcome)
        self.seconds += time.perf_counter() - clock


class _Retriever:
    """Retrieves instances into the cache a few at a time, ahead of the analysis, in input order."""

    def __init__(self, pacs: DicomwebPacs, cache: Path, threads: int, window: int) -> None:
        self.pacs, self.cache = pacs, cache
        self.threads, self.window = max(1, threads), max(1, window)
        self._pending: deque[Future[_Retrieval]] = deque()

    def next_is_ready(self) -> bool:
        """Whether the next retrieval has finished (so taking it would not make the model wait)."""
        return bool(self._pending) and self._pending[0].done()

    def _fetch(self, remote: RemoteInstance) -> _Retrieval:
        path = retrieved_path(self.cache, remote)
        if path.is_file():  # retrieved by an interrupted run (written atomically, so complete)
            return _Retrieval(remote, path, size=path.stat().st_size, reused=True)
        clock = time.perf_counter()
        try:
            size = self.pacs.retrieve(remote, path)
        except OutputError as err:
            return _Retrieval(remote, error=PacsError(err.reason, remote.label))
        except Exception as err:  # noqa: BLE001 - one instance's failure, whatever it is, is recorded; the run goes on
            return _Retrieval(remote, error=err)
        return _Retrieval(remote, path, size=size, seconds=time.perf_counter() - clock)

    def __call__(self, todo: list[RemoteInstance]) -> Iterator[_Retrieval]:
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="wado-rs")
        pending = self._pending
        queue = iter(todo)
        try:
            while True:
                while len(pending) < self.window and (remote := next(queue, None)) is not None:
                    pending.append(pool.submit(self._fetch, remote))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_pacs(
    pacs: DicomwebPacs,
    out_dir: str | os.PathLike,
    predictor: Predictor,
    *,
    query: PacsQuery | None = None,
    rules: SelectionRules | None = None,
    push: bool = False,
    resume: bool = False,
    retry_failed: bool = False,
    heatmap_seg: bool = False,
    png: bool = False,
    keep_images: bool = False,
    retrieve_threads: int = 2,
    progress: bool = True,
    credentials: str = "none",
) -> BatchSummary:
    """Localize the radiographs ``query`` selects on the PACS; write results into ``out_dir``; optionally push SEGs.

    The output tree and the run-level files are those of :func:`~PilletGANLib.batch.run_batch` (``source`` is
    the instance's WADO-RS path), plus ``push.csv`` with ``push`` and a ``pacs`` section in ``run.json``.

    Args:
        pacs: the DICOMweb service.
        out_dir: the output folder: empty or absent unless ``resume``.
        predictor: the model.
        query: studies, date and modalities to pull (default: every CR and DX series).
        rules: which retrieved images to analyse (default: the query's modalities, as ``batch`` selects).
        push: store each SEG (and heat-map SEG) in the PACS unless it already holds it.
        resume: keep complete, current instances; use images an interrupted run retrieved; report the instances
            that could not be analysed before as failed again without retrieving them.
        retry_failed: with ``resume``, forget earlier failures and retrieve and analyse those instances again.
        heatmap_seg: also write (and push) the heat map as a FRACTIONAL SEG.
        png: also write an overlay PNG.
        keep_images: keep the retrieved images in ``out_dir/retrieved`` after analysis.
        retrieve_threads: concurrent WADO-RS retrievals.
        progress: progress bars.
        credentials: where the credentials came from, for ``run.json`` (never the secret).

    Returns:
        The run's :class:`~PilletGANLib.batch.BatchSummary`; ``exit_code`` 0, or 1 when anything failed.

    Raises:
        PilletGANError: the run cannot start: the output folder is refused, or the PACS cannot be queried
            (unreachable, credentials refused).
    """
    clock, started = time.perf_counter(), timestamp()
    out_dir = Path(os.path.abspath(out_dir))
    query = query or PacsQuery()
    rules = rules or SelectionRules(modalities=query.modalities)
    check_output_folder(out_dir, resume)
    problems: list[FileProblem] = []
    # the queries come before anything is written: a PACS that cannot be used stops the run here
    studies = pacs.find_studies(query)
    listed = _list_instances(pacs, studies, query, problems, progress)
    query_s = time.perf_counter() - clock
    prepare_output_folder(out_dir, resume)
    if resume and retry_failed:
        forget_failures(out_dir)
    cache = out_dir / RETRIEVED_FOLDER
    plan = OutputPlan(heatmap_seg=heatmap_seg, png=png)
    journal = FailureJournal(out_dir, signature_of=pacs_signature)
    worker = InstanceWorker(predictor, cache, out_dir, plan, source_of=resource_of, journal=journal)
    records: list[InstanceRecord] = []
    todo: list[RemoteInstance] = []
    earlier = journal.remembered() if resume else {}
    remembered = 0
    for remote in listed:
        folder = instance_folder(out_dir, remote)
        done = read_complete_record(folder, remote, plan.kinds, worker.sha256, worker.threshold,
                                    worker.detection_threshold) if resume else None
        failure = earlier.get(remote.sop_instance_uid)
        if done is not None:
            records.append(worker.record(remote, Status.ALREADY_DONE, done))
        elif journal.matches(failure, remote, resource_of(remote)):
            record, problem = worker.remembered(remote, failure)
            if failure.stage != "discovery":  # a broken image is in errors.csv only, as on the first run
                records.append(record)
            problems.append(problem)
            remembered += 1
        else:
            clear_instance(folder, out_dir)
            todo.append(remote)
            continue
        if not keep_images:  # analysed by a run interrupted before it could delete the image
            retrieved_path(cache, remote).unlink(missing_ok=True)
    if records:
        logger.info("%d instance(s) already complete or failed before, %d to retrieve and analyse", len(records),
                    len(todo))
    pusher = _Pusher(pacs, out_dir) if push else None
    if pusher is not None:
        for record in records:
            if record.status is Status.ALREADY_DONE:
                pusher.push(record)

    loop_clock = time.perf_counter()
    retriever = _Retriever(pacs, cache, retrieve_threads, window=2 * predictor.batch_size + retrieve_threads)
    retrievals: list[_Retrieval] = []
    with logging_redirect_tqdm(), tqdm(total=len(listed), initial=len(listed) - len(todo), desc="pacs", unit="image",
                                       disable=not progress, dynamic_ncols=True) as bar:
        chunk: list[DicomInstance] = []
        for retrieval in retriever(todo):
            retrievals.append(retrieval)
            instance = _checked(retrieval, rules, records, problems, worker, journal)
            if instance is None:
                bar.update(1)
            else:
                chunk.append(instance)
            # a full batch, or what has arrived when waiting for more would leave the model idle
            if len(chunk) >= predictor.batch_size or (chunk and not retriever.next_is_ready()):
                _analyse(chunk, worker, pusher, records, problems, keep_images, bar)
                chunk = []
        _analyse(chunk, worker, pusher, records, problems, keep_images, bar)
    loop_s = time.perf_counter() - loop_clock
    _prune_empty_folders(cache)

    processed = len(todo)
    timings = {"discovery_s": query_s, "inference_s": loop_s, "total_s": time.perf_counter() - clock,
               "instances_processed": processed,
               "instances_per_s": processed / loop_s if processed and loop_s > 0 else None,
               "inference_s_per_rank": [loop_s], "retrieve_s": sum(r.seconds for r in retrievals),
               "push_s": pusher.seconds if pusher else 0.0}
    settings = {"url": pacs.url, "out_dir": str(out_dir), "selection": str(rules), "resume": resume,
                "retry_failed": retry_failed, "push": push,
                "heatmap_seg": heatmap_seg, "png": png, "keep_images": keep_images, "world_size": 1,
                **predictor_settings(predictor)}
    section = {"url": pacs.url, "query": query.to_dict(), "credentials": credentials, "studies": len(studies),
               "instances_listed": len(listed), "retrieved": sum(r.path is not None and not r.reused for r in retrievals),
               "retrieved_bytes": sum(r.size for r in retrievals if not r.reused),
               "reused_from_earlier_run": sum(r.reused for r in retrievals),
               "failed_before_not_retrieved": remembered,
               "retrieve_failed": sum(r.error is not None for r in retrievals)}
    if pusher is not None:
        section["push"] = dict(Counter(o.status for o in pusher.outcomes))
        section["files"] = {"push": "push.csv"}
        problems.extend(pusher.problems)
    summary = BatchSummary(
        input_dir=cache, out_dir=out_dir,
        records=sorted(records, key=lambda r: (r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid)),
        problems=sorted(problems, key=lambda p: (p.file, p.stage)), settings=settings, model=model_identity(predictor),
        timings=timings, started=started, finished=timestamp(), sections={"pacs": section})
    if pusher is not None:
        write_csv(out_dir / "push.csv", PUSH_COLUMNS,
                  (o.row() for o in sorted(pusher.outcomes, key=lambda o: (o.study_instance_uid, o.sop_instance_uid))))
    write_reports(summary)
    return summary


def _prune_empty_folders(root: Path) -> None:
    """Remove the empty folders under ``root`` (and ``root`` itself when empty)."""
    if not root.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def _record_unlisted(problems: list[FileProblem], study: str, err: PacsError) -> None:
    """A problem row for what ``study``'s listing left out; re-raises when the PACS cannot be used at all."""
    if _is_fatal(err):
        raise err
    logger.warning("%s", err)
    problems.append(FileProblem(f"studies/{study}", "query", error_kind(err), err.reason, error=True))


def _list_instances(pacs: DicomwebPacs, studies: list[str], query: PacsQuery, problems: list[FileProblem],
                    progress: bool) -> list[RemoteInstance]:
    """Every instance of the studies' selected series, once, sorted by UIDs; a study, series or instance that
    cannot be listed is a problem row, unless the PACS cannot be used at all."""
    found: dict[str, RemoteInstance] = {}
    for study in tqdm(studies, desc="query", unit="study", disable=not progress or len(studies) < 2):
        unlisted = partial(_record_unlisted, problems, study)
        try:
            for remote in pacs.find_instances(study, query.modalities, on_problem=unlisted):
                found.setdefault(remote.sop_instance_uid, remote)
        except PacsError as err:
            unlisted(err)
    logger.info("%d instance(s) in %d study(ies) on %s", len(found), len(studies), pacs.url)
    return sorted(found.values(), key=lambda r: (r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid))


def _checked(retrieval: _Retrieval, rules: SelectionRules, records: list[InstanceRecord],
             problems: list[FileProblem], worker: InstanceWorker, journal: FailureJournal) -> DicomInstance | None:
    """The retrieved radiograph to analyse, or ``None`` after recording why not (retrieval failed, not selected,
    broken, or not the instance asked for). A broken image is remembered in ``journal``; the rest is not."""
    remote = retrieval.remote
    source = resource_of(remote)
    if retrieval.error is not None:
        reason = error_reason(retrieval.error)
        logger.warning("%s: %s", remote.label, reason)
        problems.append(FileProblem(source, "retrieve", error_kind(retrieval.error), reason, error=True))
        records.append(worker.record(remote, Status.FAILED, error=f"retrieve: {reason}"))
        return None
    examined = examine_file(retrieval.path, rules)
    if isinstance(examined, DicomInstance) and examined.sop_instance_uid != remote.sop_instance_uid:
        reason = (f"the PACS returned SOP Instance UID {examined.sop_instance_uid} for "
                  f"{remote.sop_instance_uid}")
        problems.append(FileProblem(source, "retrieve", PacsError.kind, reason, error=True))
        records.append(worker.record(remote, Status.FAILED, error=f"retrieve: {reason}"))
        retrieval.path.unlink(missing_ok=True)
        return None
    if isinstance(examined, DicomInstance):
        return examined
    (logger.warning if examined.error else logger.info)("%s: %s", source, examined.reason)
    problems.append(FileProblem(source, "discovery", examined.kind.value, examined.reason, error=bool(examined.error)))
    if examined.error:  # in errors.csv only, as batch lists a broken file of an export
        journal.record(remote, source, "discovery", examined.kind.value, examined.reason)
    retrieval.path.unlink(missing_ok=True)
    return None


def _analyse(chunk: list[DicomInstance], worker: InstanceWorker, pusher: _Pusher | None,
             records: list[InstanceRecord], problems: list[FileProblem], keep_images: bool, bar: tqdm) -> None:
    """Run the model over retrieved radiographs, write their outputs, push their SEGs, drop the images."""
    by_path = {instance.path: instance for instance in chunk}
    for path, outcome in predictions(worker.predictor, list(by_path)):
        record, problem = worker.finish(by_path[path], outcome)
        records.append(record)
        if problem is not None:
            problems.append(problem)
            bar.set_postfix(failed=sum(p.error for p in problems))
        elif pusher is not None:
            pusher.push(record)
        if not keep_images:
            path.unlink(missing_ok=True)
        bar.update(1)
