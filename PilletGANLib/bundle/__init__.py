"""Support for the MONAI bundle ``Resources/bundle/PilletGAN_CXR``: what its configs name as ``_target_``.

The bundle's ``inference.json``, ``train.json`` and ``evaluate.json`` compose MONAI and PilletGANLib
components; this package holds the few pieces MONAI's bundle tools need that the rest of the library
does not: the bundle's folder, data lists, the mirrored pass of the inferer, post-processing transforms, the
model export at the end of training and the evaluation-report workflow.
"""

from .data import ReadableImages, image_datalist, load_records, training_split
from .evaluation import EvaluationReport
from .inferer import LocalizerInferer
from .location import bundle_root
from .network import load_weights
from .training import export_model
from .transforms import LesionDifferenced, LesionHeatMaskd, SaveSourceMapd

__all__ = [
    "EvaluationReport",
    "LesionDifferenced",
    "LesionHeatMaskd",
    "LocalizerInferer",
    "ReadableImages",
    "SaveSourceMapd",
    "bundle_root",
    "export_model",
    "image_datalist",
    "load_records",
    "load_weights",
    "training_split",
]
