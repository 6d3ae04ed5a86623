"""Failures a batch run remembers, so that ``--resume`` does not decode a failed image again.

Each rank appends one JSON line per failed instance to ``OUT/failures/rank-<r>.jsonl`` as the failure
happens (flushed and synced, so a killed run keeps what it learned; a half-written last line is ignored).
On ``--resume`` every rank reads all the journals: an instance that failed before, from the same source file
(same path, size and modification time), is reported failed again with the remembered stage, kind and reason
and is not read. ``--retry-failed`` deletes the journals first, so every failed instance is tried again.

``pilletgan pacs`` keeps the same journal for the instances it retrieved and could not analyse; there the source
is the instance's WADO-RS path and no file signature is compared (:func:`pacs_signature`): DICOM forbids new
content under an existing SOP Instance UID, so the PACS is not asked again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["FAILURES_FOLDER", "FailureJournal", "RememberedFailure", "file_signature", "forget_failures",
           "pacs_signature"]

logger = logging.getLogger(__name__)

#: Folder of the failure journals inside the output folder (made only when something fails).
FAILURES_FOLDER = "failures"


@dataclass(frozen=True)
class RememberedFailure:
    """One failed instance as the journal keeps it."""

    sop_instance_uid: str
    source: str  # path relative to the export
    size: int
    mtime_ns: int
    stage: str
    kind: str
    reason: str

    @classmethod
    def from_line(cls, line: str) -> RememberedFailure | None:
        try:
            values = json.loads(line)
            return cls(**{key: values[key] for key in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None


def file_signature(instance: Any) -> tuple[int, int] | None:
    """The size and modification time of the instance's file (``None`` when it cannot be read)."""
    try:
        info = os.stat(instance.path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def pacs_signature(instance: Any) -> tuple[int, int]:
    """The signature of an instance held by a PACS: always the same, its UIDs name its content."""
    return 0, 0


def forget_failures(out_dir: Path) -> None:
    """Delete every failure journal (``--retry-failed``)."""
    shutil.rmtree(out_dir / FAILURES_FOLDER, ignore_errors=True)


class FailureJournal:
    """This rank's journal of failures, and every rank's earlier ones."""

    def __init__(self, out_dir: Path, rank: int = 0,
                 signature_of: Callable[[Any], tuple[int, int] | None] = file_signature) -> None:
        self.folder = out_dir / FAILURES_FOLDER
        self.path = self.folder / f"rank-{rank:05d}.jsonl"
        self.signature_of = signature_of

    def remembered(self) -> dict[str, RememberedFailure]:
        """Failures of earlier runs (and of this one so far), by SOP Instance UID; the last one wins."""
        failures: dict[str, RememberedFailure] = {}
        for journal in sorted(self.folder.glob("rank-*.jsonl")) if self.folder.is_dir() else ():
            try:
                lines = journal.read_text(encoding="utf-8").splitlines()
            except OSError as err:
                logger.warning("the failure journal %s cannot be read (%s); its failures will be retried", journal, err)
                continue
            for line in lines:
                failure = RememberedFailure.from_line(line)
                if failure is not None:
                    failures[failure.sop_instance_uid] = failure
        return failures

    def matches(self, failure: RememberedFailure | None, instance: Any, source: str) -> bool:
        """Whether ``failure`` is about this instance's unchanged source file."""
        return failure is not None and failure.source == source \
            and (failure.size, failure.mtime_ns) == self.signature_of(instance)

    def record(self, instance: Any, source: str, stage: str, kind: str, reason: str) -> None:
        """Append one failure (best effort: a journal that cannot be written only costs a retry later)."""
        signature = self.signature_of(instance) or (-1, -1)
        failure = RememberedFailure(instance.sop_instance_uid, source, signature[0], signature[1], stage, kind, reason)
        line = json.dumps(asdict(failure), ensure_ascii=True) + "\n"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            logger.warning("the failure of %s cannot be remembered (%s); --resume will try it again", source, err)
