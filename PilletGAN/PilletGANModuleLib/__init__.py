"""Slicer-free logic of the PilletGAN Slicer module: CLI command, child process, result files, dependencies.

Nothing here imports ``slicer``, ``qt``, ``ctk`` or ``vtk``, so it is tested with pytest outside Slicer.
"""

from .command import (
    DEVICES,
    LIBRARY_PACKAGE,
    build_infer_command,
    cli_prefix,
    find_library_root,
    model_argument,
    subprocess_environment,
)
from .dependencies import SLICER_PROVIDED, no_downgrade_constraints, read_requirements, unmet_requirements
from .process import OutputPump, start_process, stop_process_tree
from .results import (
    InferenceOutputs,
    ResultFileError,
    SegmentInfo,
    box_roi_geometry,
    find_result_record,
    load_inference_outputs,
    threshold_heatmap,
)

__all__ = [
    "DEVICES",
    "LIBRARY_PACKAGE",
    "SLICER_PROVIDED",
    "InferenceOutputs",
    "OutputPump",
    "ResultFileError",
    "SegmentInfo",
    "box_roi_geometry",
    "build_infer_command",
    "cli_prefix",
    "find_library_root",
    "find_result_record",
    "load_inference_outputs",
    "model_argument",
    "no_downgrade_constraints",
    "read_requirements",
    "start_process",
    "stop_process_tree",
    "subprocess_environment",
    "threshold_heatmap",
    "unmet_requirements",
]
