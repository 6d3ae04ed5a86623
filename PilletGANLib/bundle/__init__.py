"""Support for the MONAI bundle ``Resources/bundle/PilletGAN_CXR``: what its configs name as ``_target_``.

The bundle's ``inference.json``, ``train.json`` and ``evaluate.json`` compose MONAI and PilletGANLib
components; this package holds the few pieces MONAI's bundle tools need that the rest of the library
does not: a single-input network, data lists, post-processing transforms, the model export at the end
of training and the evaluation-report workflow.
"""

from .data import image_datalist, load_records, training_split
from .evaluation import EvaluationReport
from .inferer import MirrorAveragingInferer
from .network import BundleEnsemble, BundleGenerator, load_weights, network_from_card
from .training import export_model
from .transforms import LesionDifferenced, LesionHeatMaskd, SaveSourceMapd

__all__ = [
    "BundleEnsemble",
    "BundleGenerator",
    "EvaluationReport",
    "LesionDifferenced",
    "LesionHeatMaskd",
    "MirrorAveragingInferer",
    "SaveSourceMapd",
    "export_model",
    "image_datalist",
    "load_records",
    "load_weights",
    "network_from_card",
    "training_split",
]
