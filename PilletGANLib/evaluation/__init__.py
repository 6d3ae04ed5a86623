"""Evaluation: score a model or saved maps, and the floor maps, with one harness; write the report."""

from .floors import FLOORS, grey_level_map, lung_prior_map, random_map
from .harness import PredictionLike, evaluate
from .maps import MapPrediction, SavedMaps
from .paired import paired_comparison, read_per_image

__all__ = ["FLOORS", "MapPrediction", "PredictionLike", "SavedMaps", "evaluate", "grey_level_map", "lung_prior_map",
           "paired_comparison", "random_map", "read_per_image"]
