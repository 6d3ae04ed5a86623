"""What a batch run records: one row per selected radiograph, one per problem file, and the run's summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_FAILURES",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "BatchSummary",
    "FileProblem",
    "InstanceRecord",
    "Status",
]

#: Exit codes of ``pilletgan batch``: every file succeeded / some files failed / the run could not start.
EXIT_OK, EXIT_FAILURES, EXIT_NOT_STARTED = 0, 1, 2


class Status(str, Enum):
    """Outcome for one selected radiograph."""

    SUCCEEDED = "succeeded"  # analysed and written by this run
    ALREADY_DONE = "already_done"  # complete outputs from an earlier run, kept (``resume``)
    FAILED = "failed"  # could not be read, analysed or written; see ``errors.csv``


@dataclass
class InstanceRecord:
    """One selected radiograph: its UIDs, source, outcome and result files (paths relative to the output folder)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    source: str
    status: Status
    score: float | None = None
    #: ``suspected`` / ``not suspected`` at the model card's detection threshold; ``None`` without one (or no result)
    finding: str | None = None
    threshold: float | None = None
    boxes: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    #: what the reader noticed about an image it analysed anyway (e.g. a polarity that contradicts the header)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InstanceRecord:
        return cls(**{**values, "status": Status(values["status"])})


@dataclass(frozen=True)
class FileProblem:
    """A file that was not analysed (``stage`` ``discovery``) or failed (``inference``, ``output``), and why.

    ``kind`` is the :mod:`PilletGANLib.errors` taxonomy word (``truncated``, ``corrupt``, ``unsupported``, ...;
    ``internal`` for an unexpected exception); ``error`` says whether it goes to ``errors.csv``.
    """

    file: str
    stage: str
    kind: str
    reason: str
    error: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSummary:
    """Everything one batch run did (the same object on every rank of a distributed run).

    ``records`` has one entry per selected radiograph (sorted by Study, Series and SOP Instance UID);
    ``problems`` one per file that was skipped or failed. Counts and the exit code derive from them.
    A run that cannot start raises a :class:`~PilletGANLib.errors.PilletGANError` instead (exit code 2).
    """

    input_dir: Path
    out_dir: Path
    records: list[InstanceRecord]
    problems: list[FileProblem]
    settings: dict[str, Any]
    model: dict[str, Any]
    timings: dict[str, Any]
    started: str
    finished: str
    #: further ``run.json`` sections of the front doors built on the batch machinery (e.g. ``"pacs"``)
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def summary_csv(self) -> Path:
        return self.out_dir / "summary.csv"

    @property
    def errors_csv(self) -> Path:
        return self.out_dir / "errors.csv"

    @property
    def skipped_csv(self) -> Path:
        return self.out_dir / "skipped.csv"

    @property
    def run_json(self) -> Path:
        return self.out_dir / "run.json"

    @property
    def errors(self) -> list[FileProblem]:
        """Rows of ``errors.csv``: failed discovery checks, then inference and output failures."""
        return [p for p in self.problems if p.error]

    @property
    def skips(self) -> list[FileProblem]:
        """Rows of ``skipped.csv``: files an export is expected to hold besides radiographs."""
        return [p for p in self.problems if not p.error]

    def _count(self, status: Status) -> int:
        return sum(r.status is status for r in self.records)

    @property
    def found(self) -> int:
        """Radiographs the selection rules selected."""
        return len(self.records)

    @property
    def skipped(self) -> int:
        """Files discovery did not select (errors included)."""
        return sum(p.stage == "discovery" for p in self.problems)

    @property
    def input_errors(self) -> int:
        """Skipped files that are failures (truncated, corrupt, unreadable, ...)."""
        return sum(p.stage == "discovery" and p.error for p in self.problems)

    @property
    def succeeded(self) -> int:
        return self._count(Status.SUCCEEDED)

    @property
    def failed(self) -> int:
        return self._count(Status.FAILED)

    @property
    def already_done(self) -> int:
        return self._count(Status.ALREADY_DONE)

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_OK` when every file succeeded, :data:`EXIT_FAILURES` when any failed (``errors.csv`` has rows)."""
        return EXIT_FAILURES if self.failed or self.errors else EXIT_OK

    def counts(self) -> dict[str, int]:
        return {"found": self.found, "succeeded": self.succeeded, "already_done": self.already_done,
                "failed": self.failed, "skipped": self.skipped, "input_errors": self.input_errors}
