"""Slicer-free logic of the PilletGAN Slicer module: CLI command, child process, result files, dependencies.

Nothing here imports ``slicer``, ``qt``, ``ctk`` or ``vtk``, so it is tested with pytest outside Slicer; of
``PilletGANLib`` it imports only the numpy-only :mod:`PilletGANLib.postprocess`, and only when the panel
re-thresholds (:func:`library_postprocess`). The scene building (:mod:`.scene`) imports ``slicer`` and is
imported by the module itself, not here.
"""

from .command import DEVICES, build_infer_command, cli_prefix, model_argument, subprocess_environment
from .dependencies import SLICER_PROVIDED, no_downgrade_constraints, read_requirements, unmet_requirements
from .library import LIBRARY_PACKAGE, find_library_root, library_postprocess, terminology_file
from .process import OutputPump, start_process, stop_process_tree
from .results import (
    InferenceOutputs,
    ResultFileError,
    SegmentInfo,
    box_roi_geometry,
    find_result_record,
    load_inference_outputs,
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
    "library_postprocess",
    "load_inference_outputs",
    "model_argument",
    "no_downgrade_constraints",
    "read_requirements",
    "start_process",
    "stop_process_tree",
    "subprocess_environment",
    "terminology_file",
    "unmet_requirements",
]
