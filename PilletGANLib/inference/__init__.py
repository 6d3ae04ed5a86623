"""Inference: from a radiograph to its healed twin, lesion map, score, mask and boxes."""

from .lesion_map import LocalizationConfig
from .predictor import Predictor, PreparedImage, prepare_image, resolve_device
from .result import LesionBox, LesionResult

__all__ = [
           "LesionBox",
           "LesionResult",
           "LocalizationConfig",
           "Predictor",
           "PreparedImage",
           "prepare_image",
           "resolve_device",
]
