"""Headless batch over PACS exports: every chest radiograph to DICOM SEG, overlay and JSON; restartable, sharded.

``run_batch`` is the entry point (``pilletgan batch`` and ``pilletgan demo`` call it); see ``docs/batch.md``.
"""

from .failures import FAILURES_FOLDER, FailureJournal
from .outputs import OUTPUT_NAMES, RESULT_NAME, OutputPlan, instance_folder, read_complete_record, remove_temporaries
from .records import (
    EXIT_FAILURES,
    EXIT_NOT_STARTED,
    EXIT_OK,
    BatchSummary,
    FileProblem,
    InstanceRecord,
    Status,
)
from .report import describe
from .runner import check_run_paths, predictions, run_batch
from .sharding import RankGroup, TorchrunEnvironment, device_for_rank, shard, torchrun_environment

__all__ = [
    "EXIT_FAILURES",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "FAILURES_FOLDER",
    "OUTPUT_NAMES",
    "RESULT_NAME",
    "BatchSummary",
    "FailureJournal",
    "FileProblem",
    "InstanceRecord",
    "OutputPlan",
    "RankGroup",
    "Status",
    "TorchrunEnvironment",
    "check_run_paths",
    "describe",
    "device_for_rank",
    "instance_folder",
    "predictions",
    "read_complete_record",
    "remove_temporaries",
    "run_batch",
    "shard",
    "torchrun_environment",
]
