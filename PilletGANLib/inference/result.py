"""What the predictor returns for one radiograph, in the source pixel grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..localization.recipe import Calibration
from ..postprocess import LesionBox

__all__ = ["LAZY_FIELDS", "LesionBox", "LesionResult"]

#: Fields a :class:`LesionResult` may be given as a function of no arguments, called on the first read: the
#: predictor resamples the healed twin and the attention maps to the source grid only for a caller that reads them,
#: and the image comes back from a reading worker only for a caller that asks (the batch front door, which writes
#: none of them unless it draws overlays, does not pay for them).
LAZY_FIELDS = frozenset({"image", "healed", "attention"})


@dataclass
class LesionResult:
    """Everything PilletGAN says about one image; every array has the source image's ``rows x cols``.

    Attributes:
        image: the input as read (float32, air dark), for overlays.
        healed: the healed twin in network intensity units ([-1, 1]), resampled to the source grid.
        difference: the unclipped lesion map (the recipe's smoothed, gated difference ``|healed - input|``, plus
            the priors it adds) in network intensity units, source grid.
        heatmap: the lesion heat map in [0, 1] (``difference`` scaled by the calibrated heat scale), source grid.
        attention: attention maps of the generator (each in [0, 1]), source grid; empty without LTA.
        score: detection score (higher = more likely pneumonia).
        calibration: the fitted values the heat map, mask and finding were made with (heat scale, mask threshold,
            detection threshold).
        mask: binary lesion mask (``heatmap >= threshold``, small components removed).
        boxes: connected components of ``mask`` with scores.
        meta: the reader's metadata plus model identification.
        location_prior: the model's opacity-location prior alone (source grid, in [0, 1]) when its localization
            uses one (``opacity_prior``), else ``None``; ``pilletgan evaluate`` scores it as the ``model_prior``
            floor.

    ``image``, ``healed`` and ``attention`` may be given as functions of no arguments that return them (:data:`LAZY_FIELDS`):
    the first read calls the function and keeps its value.
    """

    image: np.ndarray | Callable[[], np.ndarray]
    healed: np.ndarray | Callable[[], np.ndarray]
    difference: np.ndarray
    heatmap: np.ndarray
    score: float
    calibration: Calibration
    mask: np.ndarray
    boxes: list[LesionBox] = field(default_factory=list)
    attention: list[np.ndarray] | Callable[[], list[np.ndarray]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    location_prior: np.ndarray | None = None

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in LAZY_FIELDS and callable(value):
            value = value()
            object.__setattr__(self, name, value)
        return value

    @property
    def threshold(self) -> float:
        """The heat-map threshold of ``mask`` (the calibration's)."""
        return self.calibration.threshold

    @property
    def finding(self) -> str | None:
        """``suspected`` when ``score`` is at or above the calibration's detection threshold, else ``not
        suspected``; ``None`` (no call) when the model card has no detection threshold. A research operating
        point, not a diagnosis."""
        return self.calibration.finding(self.score)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.heatmap.shape[0]), int(self.heatmap.shape[1]))

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: score, ``finding`` with its detection threshold and specificity (``null`` when the card
        has none), mask threshold, boxes, shape, source identification, and the reader's ``warnings`` (for example a
        photometric interpretation the pixels contradict)."""
        keys = ("source_path", "sop_instance_uid", "series_instance_uid", "study_instance_uid", "modality",
                "pixel_spacing", "pixel_spacing_source", "model_name", "model_sha256", "model_version")
        return {
            "score": float(self.score),
            "finding": self.finding,
            "detection_threshold": self.calibration.detection_threshold,
            "detection_specificity": self.calibration.detection_specificity,
            "threshold": float(self.threshold),
            "rows": self.shape[0],
            "columns": self.shape[1],
            "mask_pixels": int(self.mask.sum()),
            "boxes": [b.to_dict() for b in self.boxes],
            **{k: self.meta.get(k) for k in keys},
            "warnings": list(self.meta.get("warnings") or []),
        }
