"""``DicomListener``: a DICOM node that receives radiographs (C-STORE), analyses them and forwards the SEGs.

Three threads share the work, each through an on-disk queue, so that nothing is lost:

- the **server** (``pynetdicom``) writes each received object into ``OUT/queue/incoming`` and checks its
  header; an object it will not analyse is deleted and refused with a status and a comment that say why
  (``0x0122`` SOP class not supported for a non-radiograph, ``0xC000`` for a broken radiograph);
- the **analyser** takes the queued radiographs a batch at a time, writes the outputs of ``batch``
  (``OUT/<study>/<series>/<sop>/``, ``summary.csv``, ``errors.csv``, ``skipped.csv``, ``run.json``),
  queues the SEGs in ``OUT/queue/forward`` and deletes the image;
- the **forwarder** C-STOREs the queued SEGs to the forward node and deletes each one the node stored;
  while the node cannot be reached it retries with a growing interval.

A sender that drops the association mid-transfer leaves nothing (objects are written only when complete).
On restart the queues are taken up where they were, and ``journal.jsonl`` (one line per record, problem
and forwarded SEG) rebuilds the run-level files. An instance analysed before with the same model is not
analysed again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from ..batch import (
    BatchSummary,
    FileProblem,
    InstanceRecord,
    InstanceWorker,
    OutputPlan,
    Status,
    instance_folder,
    model_identity,
    predictions,
    predictor_settings,
    read_complete_record,
    remove_temporaries,
    timestamp,
)
from ..batch.report import write_reports
from ..dicom import DicomInstance, SelectionRules, SkipKind, SkippedFile, examine_file
from ..errors import ConfigurationError, OutputError, PacsError
from ..inference import Predictor
from ..outputs import json_ready
from .dimse import DicomNode, send_files, valid_ae_title
from .spool import Spool, item_tag

__all__ = ["JOURNAL_NAME", "DicomListener"]

logger = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
#: Associations served at once (pynetdicom's default is 10).
MAX_ASSOCIATIONS = 64
#: Seconds a connection may take to send its association request, and the peer to answer a release (default 30).
REQUEST_WAIT_S = 10.0
#: C-STORE statuses: success; refused, SOP class not supported; cannot understand; out of resources.
_SUCCESS, _NOT_SUPPORTED, _CANNOT_UNDERSTAND, _OUT_OF_RESOURCES = 0x0000, 0x0122, 0xC000, 0xA700
#: Skips that are refusals of what the node does not analyse (rather than broken radiographs).
_NOT_FOR_US = frozenset({SkipKind.NOT_SELECTED, SkipKind.NOT_AN_IMAGE, SkipKind.NOT_DICOM, SkipKind.DICOMDIR})


class _RefusedError(Exception):
    """A received file that is not queued, and why."""

    def __init__(self, skipped: SkippedFile) -> None:
        super().__init__(skipped.reason)
        self.skipped = skipped


def _status(code: int, comment: str = "") -> Dataset:
    answer = Dataset()
    answer.Status = code
    if comment:
        answer.ErrorComment = comment if len(comment) <= 64 else comment[:61] + "..."  # LO: 64 characters at most
    return answer


def _sender(item: Path) -> str:
    """``C-STORE from <calling AE title>`` of a queued item (the title is part of its name)."""
    return f"C-STORE from {item_tag(item) or 'unknown AE'}"


def _source(instance: DicomInstance) -> str:
    return _sender(instance.path)


@dataclass
class _ForwardState:
    sent: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    next_attempt_s: float = 0.0


class DicomListener:
    """A DICOM Storage SCP that analyses each radiograph it receives and forwards the SEGs.

    Args:
        out_dir: results, queues and journal (created; an existing one is continued).
        predictor: the model.
        ae_title: this node's AE title; associations addressed to another title are rejected.
        port: TCP port to listen on.
        host: address to listen on (default loopback only; ``0.0.0.0`` for every interface).
        forward: the node to C-STORE the SEGs to (none: the SEGs stay in ``out_dir`` only).
        allowed_callers: calling AE titles accepted (empty: any).
        rules: which images to analyse (default: Modality CR or DX, as ``batch``).
        heatmap_seg: also write (and forward) the heat map as a FRACTIONAL SEG.
        png: also write an overlay PNG.
        retry_interval: seconds before the first retry of a failed forward; doubled after each failure.
        max_retry_interval: the longest wait between retries.
        timeout: seconds to wait for the forward node (connection, association, each answer).
    """

    def __init__(self, out_dir: str | os.PathLike, predictor: Predictor, *, ae_title: str = "PILLETGAN",
                 port: int = 11112, host: str = "127.0.0.1", forward: DicomNode | None = None,
                 allowed_callers: Sequence[str] = (), rules: SelectionRules | None = None, heatmap_seg: bool = False,
                 png: bool = False, retry_interval: float = 5.0, max_retry_interval: float = 300.0,
                 timeout: float = 30.0) -> None:
        self.out_dir = Path(os.path.abspath(out_dir))
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputError("the output path exists and is not a folder", self.out_dir)
        if not 0 <= int(port) < 65536:
            raise ConfigurationError(f"--port must be 0-65535, not {port}")
        if retry_interval <= 0 or max_retry_interval < retry_interval:
            raise ConfigurationError("the retry interval must be positive and at most the maximum retry interval")
        self.ae_title, self.host, self.port, self.forward = valid_ae_title(ae_title), host, int(port), forward
        self.allowed_callers = [valid_ae_title(a) for a in allowed_callers]
        self.rules = rules or SelectionRules()
        self.plan = OutputPlan(heatmap_seg=heatmap_seg, png=png)
        self.retry_interval, self.max_retry_interval, self.timeout = retry_interval, max_retry_interval, timeout
        self.predictor = predictor
        self.incoming = Spool(self.out_dir / "queue" / "incoming")
        self.outgoing = Spool(self.out_dir / "queue" / "forward")
        # no failure journal: a sender's new C-STORE of an instance that failed is a new attempt
        self.worker = InstanceWorker(predictor, self.incoming.folder, self.out_dir, self.plan, source_of=_source)
        self._records: dict[str, InstanceRecord] = {}
        self._problems: list[FileProblem] = []
        self._forward = _ForwardState()
        self._counts = {"received": 0, "refused": 0}
        self._analysis_s = 0.0
        self._processed = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._work = threading.Event()
        self._forward_work = threading.Event()
        self._busy = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None
        self._started, self._clock = timestamp(), time.perf_counter()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> DicomListener:
        """Take up the queues and journal, start the server and the two workers; returns ``self``."""
        remove_temporaries(self.out_dir)
        self._load_journal()
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        # a connection holds an association slot until its request arrives or this wait ends, closed or not:
        # a few port scans or TCP health checks must not lock modalities out
        ae.maximum_associations, ae.acse_timeout = MAX_ASSOCIATIONS, REQUEST_WAIT_S
        if self.allowed_callers:
            ae.require_calling_aet = self.allowed_callers
        for context in AllStoragePresentationContexts:  # every storage class, so refusals carry a reason
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as err:
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port} ({err.strerror or err}); "
                                     "is another node using the port?") from err
        self.port = self._server.server_address[1]
        self.worker.predictor.warm_up()  # the network is ready before the first image arrives
        for target, name in ((self._analyse_loop, "pilletgan-analyse"), (self._forward_loop, "pilletgan-forward")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._work.set()
        self._forward_work.set()
        self.write_reports()
        scope = "loopback only; --host 0.0.0.0 to accept other machines" if self.host in ("127.0.0.1", "::1", "localhost") \
            else "all interfaces" if self.host in ("0.0.0.0", "::") else self.host
        logger.info("listening as %s on %s:%d (%s)%s", self.ae_title, self.host, self.port, scope,
                    f"; SEGs are forwarded to {self.forward}" if self.forward else "")
        return self

    def stop(self) -> None:
        """Stop accepting, let the analyser finish its batch, write the reports. Queued items stay queued."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._stop.set()
        self._work.set()
        self._forward_work.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self.write_reports()

    def __enter__(self) -> DicomListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start and run until :meth:`stop` is called (from a signal handler) or Ctrl-C."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            logger.info("interrupted: stopping (queued items are kept for the next start)")
        finally:
            self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to stop (safe from a signal handler)."""
        self._stop.set()

    def wait_idle(self, timeout: float, forwarded: bool = True) -> bool:
        """Wait until nothing is queued for analysis (and, with ``forwarded``, for forwarding); returns whether so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.incoming.pending() and not self._busy.is_set() and not (forwarded and self.outgoing.pending()):
                return True
            time.sleep(0.05)
        return False

    # -- receiving -----------------------------------------------------------------------------
    def _on_store(self, event: evt.Event) -> Dataset:
        caller = str(event.assoc.requestor.ae_title).strip() or "unknown"
        sop = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "?")
        label = f"C-STORE from {caller}: instance {sop}"
        try:
            skipped = self._queue(event.encoded_dataset(), caller)
        except OutputError as err:
            logger.error("%s cannot be queued: %s", label, err.reason)
            return _status(_OUT_OF_RESOURCES, "cannot queue: " + err.reason)
        with self._lock:
            self._counts["received"] += 1
        if skipped is None:
            self._work.set()
            return _status(_SUCCESS)
        with self._lock:
            self._counts["refused"] += 1
        self._add_problem(FileProblem(label, "receive", skipped.kind.value, skipped.reason,
                                      error=bool(skipped.error)))
        logger.warning("%s refused: %s", label, skipped.reason)
        code = _NOT_SUPPORTED if skipped.kind in _NOT_FOR_US else _CANNOT_UNDERSTAND
        return _status(code, f"{skipped.kind.value}: {skipped.reason}")

    def _queue(self, data: bytes, caller: str) -> SkippedFile | None:
        """Queue a received file when it is a radiograph to analyse; else why not (and nothing is queued).

        The file is examined before it joins the queue: once there, the analyser may take it (and delete it) at once.
        """
        try:
            with self.incoming.new_item(tag=caller) as temporary:
                temporary.write_bytes(data)
                examined = examine_file(temporary, self.rules)
                if not isinstance(examined, DicomInstance):
                    raise _RefusedError(examined)
        except _RefusedError as refused:
            return refused.skipped
        return None

    # -- analysing -----------------------------------------------------------------------------
    def _analyse_loop(self) -> None:
        while not self._stop.is_set():
            self._work.wait(timeout=1.0)
            self._work.clear()
            while not self._stop.is_set():
                items = self.incoming.pending()[: self.predictor.batch_size]
                if not items:
                    break
                self._busy.set()
                try:
                    self._analyse(items)
                except Exception:  # the node must keep serving; the items stay queued for a retry
                    logger.exception("analysis of %d queued image(s) failed; they stay queued", len(items))
                    self._stop.wait(self.retry_interval)
                finally:
                    self._busy.clear()

    def _analyse(self, items: list[Path]) -> None:
        clock = time.perf_counter()
        todo: dict[Path, DicomInstance] = {}
        seen: set[str] = set()
        for item in items:
            examined = examine_file(item, self.rules)
            if not isinstance(examined, DicomInstance):  # queued by an older version or altered on disk
                self._add_problem(FileProblem(f"{_sender(item)}: {item.name}", "receive",
                                              examined.kind.value, examined.reason,
                                              error=bool(examined.error)))
                item.unlink(missing_ok=True)
            elif examined.sop_instance_uid in seen:
                continue  # the same instance twice in one batch: the second waits for the next one
            elif self._already_done(examined):
                logger.info("instance %s was analysed before with this model; not analysed again",
                            examined.sop_instance_uid)
                item.unlink(missing_ok=True)
            else:
                seen.add(examined.sop_instance_uid)
                todo[examined.path] = examined
        for path, outcome in predictions(self.predictor, list(todo)):
            record, problem = self.worker.finish(todo[path], outcome)
            if record.status is Status.SUCCEEDED and self.forward is not None:
                for kind in ("seg", "heatmap_seg"):
                    if kind in record.files:
                        self.outgoing.put_file(self.out_dir / record.files[kind], tag=kind)
                self._forward_work.set()
            self._add_record(record)
            if problem is not None:
                self._add_problem(problem)
            path.unlink(missing_ok=True)
        with self._lock:
            self._analysis_s += time.perf_counter() - clock
            self._processed += len(todo)
        self.write_reports()

    def _already_done(self, instance: DicomInstance) -> bool:
        folder = instance_folder(self.out_dir, instance)
        done = read_complete_record(folder, instance, self.plan.kinds, self.worker.sha256, self.worker.threshold,
                                    self.worker.detection_threshold)
        if done is None:
            return False
        with self._lock:
            if instance.sop_instance_uid not in self._records:
                self._add_record(self.worker.record(instance, Status.ALREADY_DONE, done))
        return True

    # -- forwarding ----------------------------------------------------------------------------
    def _forward_loop(self) -> None:
        delay = self.retry_interval
        while not self._stop.is_set():
            self._forward_work.wait(timeout=1.0)
            self._forward_work.clear()
            items = self.outgoing.pending() if self.forward is not None else []
            if not items:
                continue
            if self._forward_items(items):
                delay = self.retry_interval
                continue
            with self._lock:
                self._forward.next_attempt_s = delay
            self.write_reports()
            if self._stop.wait(delay):
                break
            delay = min(2 * delay, self.max_retry_interval)
            self._forward_work.set()

    def _forward_items(self, items: list[Path]) -> bool:
        """C-STORE ``items`` to the forward node; delete the stored ones. Returns whether every one was stored."""
        try:
            results = send_files(self.forward, items, self.ae_title, timeout=self.timeout)
        except PacsError as err:
            self._forward_failed(f"forwarding {len(items)} SEG(s) failed: {err}")
            return False
        refused = []
        for result in results:
            if result.stored:
                result.path.unlink(missing_ok=True)
                self._journal({"forwarded": {"seg_sop_instance_uid": result.sop_instance_uid, "to": str(self.forward),
                                             "at": timestamp()}})
                with self._lock:
                    self._forward.sent += 1
            else:
                refused.append(f"SEG {result.sop_instance_uid}: {result.describe()}")
        if refused:
            self._forward_failed(f"{self.forward} did not store {len(refused)} SEG(s): " + "; ".join(refused))
            return False
        with self._lock:
            self._forward.last_error = None
        logger.info("forwarded %d SEG(s) to %s", len(results), self.forward)
        self.write_reports()
        return True

    def _forward_failed(self, message: str) -> None:
        logger.warning("%s; kept in %s, retrying", message, self.outgoing.folder)
        with self._lock:
            self._forward.last_error, self._forward.last_error_at = message, timestamp()

    # -- records and reports -------------------------------------------------------------------
    def _journal(self, entry: dict[str, Any]) -> None:
        line = json.dumps(json_ready(entry), separators=(",", ":"), default=str) + "\n"
        with self._lock, open(self.out_dir / JOURNAL_NAME, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _add_record(self, record: InstanceRecord) -> None:
        with self._lock:
            self._records[record.sop_instance_uid] = record
            self._journal({"record": record.to_dict()})

    def _add_problem(self, problem: FileProblem) -> None:
        with self._lock:
            self._problems.append(problem)
            self._journal({"problem": problem.to_dict()})

    def _load_journal(self) -> None:
        path = self.out_dir / JOURNAL_NAME
        if not path.is_file():
            return
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    entry = json.loads(line)
                    if "record" in entry:
                        record = InstanceRecord.from_dict(entry["record"])
                        self._records[record.sop_instance_uid] = record
                    elif "problem" in entry:
                        self._problems.append(FileProblem(**entry["problem"]))
                    elif "forwarded" in entry:
                        self._forward.sent += 1
                except (ValueError, TypeError, KeyError):  # a line cut by a crash: the rest is still good
                    logger.warning("%s line %d cannot be read; skipped", path, number)

    def summary(self) -> BatchSummary:
        """Everything this output folder holds so far, as the batch summary (counts, records, problems)."""
        with self._lock:
            records = sorted(self._records.values(),
                             key=lambda r: (r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid))
            problems = list(self._problems)
            analysis_s, processed = self._analysis_s, self._processed
            forward = {"node": str(self.forward) if self.forward else None, "sent": self._forward.sent,
                       "pending": len(self.outgoing.pending()), "last_error": self._forward.last_error,
                       "last_error_at": self._forward.last_error_at,
                       "next_attempt_in_s": self._forward.next_attempt_s if self._forward.last_error else None}
            section = {"ae_title": self.ae_title, "host": self.host, "port": self.port,
                       "allowed_callers": self.allowed_callers, **self._counts,
                       "queued_for_analysis": len(self.incoming.pending()), "forward": forward,
                       "files": {"journal": JOURNAL_NAME}}
        settings = {"out_dir": str(self.out_dir), "selection": str(self.rules), "heatmap_seg": self.plan.heatmap_seg,
                    "png": self.plan.png, "world_size": 1, **predictor_settings(self.predictor)}
        timings = {"discovery_s": 0.0, "inference_s": analysis_s, "total_s": time.perf_counter() - self._clock,
                   "instances_processed": processed,
                   "instances_per_s": processed / analysis_s if processed and analysis_s > 0 else None,
                   "inference_s_per_rank": [analysis_s]}
        return BatchSummary(input_dir=self.incoming.folder, out_dir=self.out_dir, records=records, problems=problems,
                            settings=settings, model=model_identity(self.predictor), timings=timings,
                            started=self._started, finished=timestamp(), sections={"listen": section})

    def write_reports(self) -> None:
        """Rewrite ``summary.csv``, ``errors.csv``, ``skipped.csv`` and ``run.json`` (atomically)."""
        with self._lock:
            try:
                write_reports(self.summary())
            except OutputError as err:
                logger.error("the reports cannot be written: %s", err)

