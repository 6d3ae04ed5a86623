"""Headless batch over PACS exports: every chest radiograph to DICOM SEG, overlay and JSON; restartable, sharded.

``run_batch`` is the entry point (``pilletgan batch`` and ``pilletgan demo`` call it); see ``docs/batch.md``.
"""

from .failures import FAILURES_FOLDER, FailureJournal
from .outputs import (
    OUTPUT_NAMES,
    RESULT_NAME,
    InstanceUIDs,
    OutputPlan,
    instance_folder,
    read_complete_record,
    remove_temporaries,
)
from .records import (
    EXIT_FAILURES,
    EXIT_NOT_STARTED,
    EXIT_OK,
    BatchSummary,
    FileProblem,
    InstanceRecord,
    Status,
)
from .report import describe, write_csv
from .runner import (
    InstanceWorker,
    check_output_folder,
    check_run_paths,
    model_identity,
    predictions,
    predictor_settings,
    prepare_output_folder,
    run_batch,
    timestamp,
)
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
    "InstanceUIDs",
    "InstanceWorker",
    "OutputPlan",
    "RankGroup",
    "Status",
    "TorchrunEnvironment",
    "check_output_folder",
    "check_run_paths",
    "describe",
    "device_for_rank",
    "instance_folder",
    "model_identity",
    "predictions",
    "predictor_settings",
    "prepare_output_folder",
    "read_complete_record",
    "remove_temporaries",
    "run_batch",
    "shard",
    "timestamp",
    "torchrun_environment",
    "write_csv",
]
