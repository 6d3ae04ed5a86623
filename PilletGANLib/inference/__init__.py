"""Inference: from a radiograph to its healed twin, lesion map, score, mask and boxes."""

from .predictor import Predictor, resolve_device
from .result import LesionBox, LesionResult

__all__ = ["LesionBox", "LesionResult", "Predictor", "resolve_device"]
