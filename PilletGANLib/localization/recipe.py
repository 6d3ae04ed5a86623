"""What a model card says about its lesion map: the recipe's choices and the values fitted on data.

:class:`MapRecipe` holds the choices (how the difference is taken, smoothed, gated, mirrored and blended with
priors, and how the detection score is read); :class:`Calibration` holds what is fitted on healthy
validation images (heat-map scale, mask threshold, the detection operating point). A card stores them as its ``localization`` and
``calibration`` sections; :func:`localization_from_card` also reads cards written before the two were
separated, whose ``localization`` section held ``heat_scale`` and ``threshold`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Self

import numpy as np

from ..errors import ConfigurationError
from ..values import is_finite_number

__all__ = ["DEFAULT_SPECIFICITY", "DIFFERENCES", "FINDINGS", "LEGACY_FITTED_KEYS", "LUNG_WEIGHTINGS", "SCORE_REGIONS",
           "Calibration", "MapRecipe", "card_sections", "detection_threshold_at", "fit_calibration",
           "localization_from_card"]

#: How the healed twin and the input become a difference map.
DIFFERENCES = ("absolute", "removed")
#: How the lung gate weights the map.
LUNG_WEIGHTINGS = ("none", "interior")
#: Where the detection score reads the map.
SCORE_REGIONS = ("map", "image")
#: Fitted values that cards written before the recipe/calibration split kept in their ``localization`` section.
LEGACY_FITTED_KEYS = ("heat_scale", "threshold")
#: The calls of the detection operating point: ``score >= detection_threshold`` is ``suspected``.
FINDINGS = ("suspected", "not suspected")
#: Share of healthy calibration images whose score falls below the fitted detection threshold, by default.
DEFAULT_SPECIFICITY = 0.95


class _Section:
    """What the two card sections share: a plain dict, a copy with values changed (checked again), and the check
    that each value has its field's type (a card is a file a user may have edited)."""

    def _check_types(self, section: str) -> None:
        """Refuse a value that is not its field's type: ``float`` a finite number (not a boolean), ``bool`` true or
        false, ``str`` a string; ``| None`` fields may also be null."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and "None" in spec.type:
                continue
            if "float" in spec.type:
                fits, wanted = is_finite_number(value), "a finite number"
            elif spec.type == "bool":
                fits, wanted = isinstance(value, bool), "true or false"
            else:
                fits, wanted = isinstance(value, str), "a string"
            if not fits:
                raise ConfigurationError(f"{section} {spec.name} must be {wanted}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> Self:
        """A copy with some values changed (checked again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class MapRecipe(_Section):
    """How a healed twin becomes a lesion map, a detection score and a mask: the model card's ``localization``.

    Every setting is set with ``pilletgan train --set localization.KEY=VALUE`` or changed on a trained model
    with ``pilletgan model calibrate --set localization.KEY=VALUE`` (which refits the calibration).

    Attributes:
        difference: ``absolute`` (``|healed - x|``, the design's map) or ``removed`` (``max(x - healed, 0)``: only
            the brightness the healing removed, which is what an opacity is).
        smoothing_sigma: Gaussian sigma of the difference map, in network pixels at 256 px (scaled with the
            network size; 0 = no smoothing).
        border_fraction: width of the image border, as a fraction of the valid (unpadded) image's side, that the
            map and the score ignore.
        lung_gate: multiply the map by the lung fields estimated on the image itself (convex hull per lung,
            :func:`~PilletGANLib.transforms.lung_fields_gate`).
        lung_margin: widen those lung fields by this fraction of the image side (0 = each lung's hull; in
            [0, 0.5)); training with ``edit_region=lungs`` lets the generator edit the same widened fields.
        lung_weighting: with ``lung_gate``, ``none`` (a binary gate) or ``interior`` (the map is also weighted by
            the distance to the lung-field boundary, 1 at the deepest point, which moves its peak off the heart
            border, the diaphragm and the ribs' edge; the score keeps the binary gate).
        mirror_average: average the map with the map of the left-right mirrored image, mirrored back (a second
            generator pass); the detection score reads the plain map.
        asymmetry: weight of the map's own left-right mirror image subtracted from the gated map, clipped at 0
            (0 = none): ``max(map - asymmetry * mirror(map), 0)`` keeps what one side of the image has more of than
            the other, so a symmetric map fades and a one-sided opacity stands out (1 keeps only the excess). Applied
            before the priors are added; the detection score reads the plain map.
        lung_prior: amplitude, in difference units, of the learned lung-field prior added to the gated map (0 =
            none): the two-lung drawing of the lung-field box the card's ``lung_fields`` model predicts. The
            score reads the difference alone.
        opacity_prior: amplitude of the **box-supervised** opacity-location template added to the gated map, times
            the image's detection score (0 = none, the default and the shipped model's value): needs the card's
            ``opacity_prior`` template (fitted on radiologists' opacity boxes) and ``lung_fields`` model. Images
            the GAN scores as abnormal get a map shaped by where opacities usually lie, not by this image: it
            raises the pointing game on SIIM and fails the laterality check, so it is opt-in only.
        score_region: where the detection score reads the map: ``map`` (the lung-gated map) or ``image`` (the
            whole image minus the border, so a lung gate shapes the map without hiding evidence from the score).
        top_percent: the detection score is the mean of this top percentage of the score region's pixels.
        min_component_fraction: connected components of the mask smaller than this fraction of the image are
            dropped.
    """

    difference: str = "absolute"
    smoothing_sigma: float = 2.0
    border_fraction: float = 0.03
    lung_gate: bool = False
    lung_margin: float = 0.0
    lung_weighting: str = "none"
    mirror_average: bool = False
    asymmetry: float = 0.0
    lung_prior: float = 0.0
    opacity_prior: float = 0.0
    score_region: str = "map"
    top_percent: float = 1.0
    min_component_fraction: float = 0.002

    def __post_init__(self) -> None:
        def refuse(message: str) -> None:
            raise ConfigurationError(f"localization {message}")

        self._check_types("localization")

        if self.difference not in DIFFERENCES:
            refuse(f"difference must be one of {DIFFERENCES}, got '{self.difference}'")
        if self.lung_weighting not in LUNG_WEIGHTINGS:
            refuse(f"lung_weighting must be one of {LUNG_WEIGHTINGS}, got '{self.lung_weighting}'")
        if self.lung_weighting != "none" and not self.lung_gate:
            refuse("lung_weighting needs lung_gate=true (it weights the lung fields)")
        if not 0 <= self.lung_margin < 0.5:
            refuse(f"lung_margin must be in [0, 0.5), got {self.lung_margin}")
        for name in ("asymmetry", "lung_prior", "opacity_prior", "smoothing_sigma", "border_fraction",
                     "min_component_fraction"):
            if getattr(self, name) < 0:
                refuse(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.score_region not in SCORE_REGIONS:
            refuse(f"score_region must be 'map' or 'image', got '{self.score_region}'")
        if not 0 < self.top_percent <= 100:
            refuse(f"top_percent must be in (0, 100], got {self.top_percent}")
        for name, high in (("smoothing_sigma", 64.0), ("border_fraction", 0.45), ("min_component_fraction", 1.0)):
            if getattr(self, name) > high:
                refuse(f"{name} must be <= {high}, got {getattr(self, name)}")

    @property
    def needs_lung_fields(self) -> bool:
        """Whether the map draws the learned lung-field model (``lung_prior`` or ``opacity_prior``)."""
        return self.lung_prior > 0 or self.opacity_prior > 0

    @property
    def needs_opacity_template(self) -> bool:
        """Whether the map draws the opacity-location template (``opacity_prior``)."""
        return self.opacity_prior > 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> MapRecipe:
        """The recipe of a ``localization`` mapping; an unknown key is refused, since silently ignoring a
        setting would change the map."""
        values = dict(values or {})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigurationError(f"unknown localization setting(s) {sorted(unknown)} (known: "
                                     f"{[f.name for f in fields(cls)]})")
        return cls(**values)


@dataclass(frozen=True)
class Calibration(_Section):
    """Values of the lesion map fitted on healthy validation images: the model card's ``calibration``.

    ``pilletgan train`` fits them at export and ``pilletgan model calibrate`` refits them; the card's
    ``calibration`` section also records how (percentiles, image count, source model), which is not read back.

    Attributes:
        heat_scale: lesion-map value that maps to heat 1.0: ``heat = clip(map / heat_scale, 0, 1)``.
        threshold: heat value at or above which a pixel is lesion (the mask).
        detection_threshold: detection score at or above which an image's ``finding`` is ``suspected`` (else ``not
            suspected``): the ``detection_specificity`` quantile of the healthy calibration images' scores. A research
            operating point, not a diagnosis. ``null`` on cards calibrated before it existed: their results carry
            ``finding: null`` (no call is made; recalibrate with ``pilletgan model calibrate`` to get one).
        detection_specificity: share of the healthy calibration images scored below ``detection_threshold`` (the
            specificity it was fitted at, e.g. 0.95; ``pilletgan model calibrate --specificity``); ``null`` with it.
    """

    heat_scale: float = 1.0
    threshold: float = 0.5
    detection_threshold: float | None = None
    detection_specificity: float | None = None

    def __post_init__(self) -> None:
        self._check_types("calibration")
        if not self.heat_scale > 0:
            raise ConfigurationError(f"calibration heat_scale must be > 0, got {self.heat_scale}")
        if (self.detection_threshold is None) != (self.detection_specificity is None):
            raise ConfigurationError("calibration detection_threshold and detection_specificity go together (the "
                                     "threshold means nothing without the specificity it was fitted at)")
        if self.detection_specificity is not None and not 0 < self.detection_specificity < 1:
            raise ConfigurationError(f"calibration detection_specificity must be in (0, 1), got "
                                     f"{self.detection_specificity}")
        if self.detection_threshold is not None and not np.isfinite(self.detection_threshold):
            raise ConfigurationError(f"calibration detection_threshold must be finite, got {self.detection_threshold}")

    def finding(self, score: float) -> str | None:
        """The call on an image with detection ``score``: ``suspected`` when ``score >= detection_threshold``, else
        ``not suspected``; ``None`` (no call) when this calibration has no detection threshold."""
        if self.detection_threshold is None:
            return None
        return FINDINGS[0] if float(score) >= self.detection_threshold else FINDINGS[1]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Calibration:
        """The fitted values of a card's ``calibration`` section (its record of how they were fitted is skipped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


def localization_from_card(card: Mapping[str, Any]) -> tuple[MapRecipe, Calibration]:
    """``(recipe, calibration)`` of a model card.

    The recipe is the card's ``localization`` section, the fitted values its ``calibration`` section. A card
    written before the two were separated kept ``heat_scale`` and ``threshold`` in ``localization``: those are
    the values such a card was used with, so they take precedence over its ``calibration`` record.

    Raises:
        ConfigurationError: a setting of the wrong type or out of range, naming the card's weights (``path``).
    """
    section = dict(card.get("localization") or {})
    legacy = {key: section.pop(key) for key in LEGACY_FITTED_KEYS if key in section}
    try:
        return MapRecipe.from_dict(section), Calibration.from_dict({**(card.get("calibration") or {}), **legacy})
    except ConfigurationError as err:
        raise ConfigurationError(err.reason, card.get("path")) from err


def card_sections(recipe: MapRecipe, calibration: Calibration, record: Mapping[str, Any] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """The ``localization`` and ``calibration`` sections of a model card; ``record`` says how the calibration
    was fitted (percentiles, images, source model) and is kept beside the fitted values."""
    return {"localization": recipe.to_dict(), "calibration": {**calibration.to_dict(), **(record or {})}}


def detection_threshold_at(scores: Iterable[float], specificity: float = DEFAULT_SPECIFICITY) -> float:
    """The detection threshold at ``specificity`` on healthy images' detection ``scores``: their
    ``100 * specificity``-th percentile (linear interpolation), so about ``1 - specificity`` of healthy images score
    at or above it (are falsely ``suspected``).

    Raises:
        ValueError: no scores, a score that is not finite, or ``specificity`` outside (0, 1).
    """
    values = np.asarray(list(scores), dtype=np.float64)
    if values.size == 0:
        raise ValueError("a detection threshold needs the scores of at least one healthy image")
    if not np.all(np.isfinite(values)):
        raise ValueError("healthy detection scores must be finite")
    if not 0 < specificity < 1:
        raise ValueError(f"specificity must be in (0, 1), got {specificity}")
    return float(np.percentile(values, 100.0 * specificity))


def fit_calibration(maps: Iterable[tuple[np.ndarray, np.ndarray]], percentile: float = 99.0,
                    scale_percentile: float = 99.9, scores: Iterable[float] | None = None,
                    specificity: float = DEFAULT_SPECIFICITY) -> tuple[Calibration, dict[str, Any]]:
    """Fit the heat scale, the mask threshold and the detection operating point on healthy images.

    ``maps`` are the healthy images' ``(lesion map, map gate)`` pairs: ``heat_scale`` is the ``scale_percentile`` of
    the map over every pixel it covers (the gate, and wherever a prior adds to it), so heat 1.0 means "a value
    almost never seen on a healthy image"; ``threshold`` is the ``percentile`` of those pixels' heat, so about
    ``100 - percentile`` % of healthy pixels are (falsely) masked. ``scores`` are the same images' detection scores:
    ``detection_threshold`` is fitted on them at ``specificity`` (:func:`detection_threshold_at`); without them the
    calibration makes no call. Returns the calibration and its record (percentiles, image counts).
    """
    values = [lesion_map[(gate > 0) | (lesion_map > 0)] for lesion_map, gate in maps]
    if not values:
        raise ValueError("calibration needs at least one healthy image")
    pooled = np.concatenate(values)
    heat_scale = float(max(np.percentile(pooled, scale_percentile), 1e-6))
    threshold = float(np.clip(np.percentile(np.clip(pooled / heat_scale, 0, 1), percentile), 1e-3, 1.0))
    record: dict[str, Any] = {"percentile": percentile, "scale_percentile": scale_percentile,
                              "healthy_images": len(values)}
    detection: dict[str, float] = {}
    if scores is not None:
        scores = list(scores)
        if len(scores) != len(values):
            raise ValueError(f"{len(scores)} detection scores for {len(values)} healthy maps")
        detection = {"detection_threshold": detection_threshold_at(scores, specificity),
                     "detection_specificity": float(specificity)}
    return Calibration(heat_scale, threshold, **detection), record
