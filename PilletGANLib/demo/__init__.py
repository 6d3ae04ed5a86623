"""The one-command demo: a synthetic chest radiograph phantom with a known opacity, localized as ``pilletgan batch`` does.

:mod:`.phantom` draws the sample radiograph (no copied images) and :mod:`.study` writes it as a DICOM CR file;
:mod:`.run` runs the model on it and scores the heat map; :mod:`.report` writes ``index.html``.
"""

from .phantom import DEFAULT_SIZE, PhantomRadiograph, make_phantom_radiograph
from .report import phantom_preview_png, write_demo_index
from .run import DEMO_SEED, DemoSummary, PointingGame, read_seg_frame, run_demo
from .study import SampleStudy, phantom_dataset, write_phantom_dicom, write_sample_study

__all__ = [
    "DEFAULT_SIZE",
    "DEMO_SEED",
    "DemoSummary",
    "PhantomRadiograph",
    "PointingGame",
    "SampleStudy",
    "make_phantom_radiograph",
    "phantom_dataset",
    "phantom_preview_png",
    "read_seg_frame",
    "run_demo",
    "write_demo_index",
    "write_phantom_dicom",
    "write_sample_study",
]
