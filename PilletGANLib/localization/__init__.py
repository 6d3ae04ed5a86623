"""The lesion-map recipe and its one owner, the :class:`Localizer`.

:class:`MapRecipe` (choices) and :class:`Calibration` (fitted values) are what a model card says about its map;
the :class:`Localizer` applies them for the Predictor, the MONAI bundle and the training evaluator alike.
"""

from .localizer import LesionMaps, Localizer, border_gates, lung_map_weights, valid_masks
from .recipe import (
    DEFAULT_SPECIFICITY,
    FINDINGS,
    Calibration,
    MapRecipe,
    card_sections,
    detection_threshold_at,
    fit_calibration,
    localization_from_card,
)

__all__ = [
    "DEFAULT_SPECIFICITY",
    "FINDINGS",
    "Calibration",
    "LesionMaps",
    "Localizer",
    "MapRecipe",
    "border_gates",
    "card_sections",
    "detection_threshold_at",
    "fit_calibration",
    "localization_from_card",
    "lung_map_weights",
    "valid_masks",
]
