"""``Localizer``: the one owner of the lesion-map recipe, from a healed twin to a map, a score and a mask.

Network grid (batched, torch): gating by the valid (unpadded) area minus a border and optionally by the
lung fields, the difference ``|healed - x|`` (or the removed brightness), Gaussian smoothing, the detection
score (mean of the top-k % of the score region), mirror averaging, left-right asymmetry, and the lung-field
and opacity priors added to the map. Source grid (numpy, :mod:`PilletGANLib.postprocess`): heat map and cleaned mask with the
calibrated values. The :class:`~PilletGANLib.inference.Predictor`, the bundle (``LesionDifferenced`` and its
inferer) and the training evaluator all call it, so a setting added here changes every front door at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import GaussianSmooth
from scipy import ndimage

from ..errors import ConfigurationError, ModelError
from ..model_store import companion_path
from ..postprocess import LesionBox, MaskComponents, connected_boxes, heat_from_difference, mask_components
from ..priors import LungFieldEstimator, OpacityTemplate, lung_box_prior
from ..transforms.geometry import CXRGeometry
from ..transforms.lungs import lung_fields_gate
from .recipe import Calibration, MapRecipe, localization_from_card

__all__ = ["LesionMaps", "Localizer", "border_gates", "lung_map_weights", "valid_masks"]


@dataclass
class LesionMaps:
    """A batch's lesion maps at network resolution, each ``(B, 1, N, N)`` but ``scores`` ``(B,)``.

    Attributes:
        maps: the lesion maps (gated difference, plus the priors the recipe adds), unclipped.
        scores: detection scores.
        map_gates: the gates the maps were multiplied by (calibration reads the pixels they cover).
        location_priors: the opacity-location template alone where the recipe adds it, else ``None``.
    """

    maps: torch.Tensor
    scores: torch.Tensor
    map_gates: torch.Tensor
    location_priors: torch.Tensor | None = None


def valid_masks(geometries: Sequence[CXRGeometry]) -> torch.Tensor:
    """``(B, 1, N, N)`` float masks of the network pixels inside each source image (not padding)."""
    return torch.stack([torch.from_numpy(g.valid_mask().astype(np.float32)) for g in geometries])[:, None]


def border_gates(valid: torch.Tensor, border_fraction: float) -> torch.Tensor:
    """``(B, 1, N, N)`` gates: each valid area minus a border margin of ``border_fraction`` of its extent."""
    inside = torch.as_tensor(valid).as_subclass(torch.Tensor) > 0.5
    gates = torch.zeros(inside.shape, dtype=torch.float32)
    for index, item in enumerate(inside[:, 0].cpu()):
        rows = torch.nonzero(item.any(1)).flatten()
        cols = torch.nonzero(item.any(0)).flatten()
        if len(rows) == 0:
            continue
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        mr, mc = round((bottom - top) * border_fraction), round((right - left) * border_fraction)
        gates[index, 0, top + mr: bottom - mr, left + mc: right - mc] = 1.0
    return gates * inside.cpu()


def lung_map_weights(lungs: np.ndarray | torch.Tensor, weighting: str) -> torch.Tensor:
    """``N x N`` float weights of a lung-field mask: the mask itself (``none``) or, for ``interior``, each
    pixel's distance to the mask's boundary (or the image edge) divided by the largest such distance."""
    mask = np.asarray(lungs.cpu() if isinstance(lungs, torch.Tensor) else lungs) > 0
    if weighting == "none":
        return torch.from_numpy(mask.astype(np.float32))
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # the image edge is a boundary too
    return torch.from_numpy((distance / max(float(distance.max()), 1.0)).astype(np.float32))


class Localizer:
    """Turns network-grid images and their healed twins into lesion maps, scores, heat maps and masks.

    Built once per model (:meth:`from_card`); it checks there that the priors its recipe draws are loaded.

    Args:
        recipe: the choices (the card's ``localization``).
        calibration: the fitted values (the card's ``calibration``).
        lung_fields: the lung-field model, needed when the recipe's ``lung_prior`` or ``opacity_prior`` is on.
        opacity_template: the opacity-location template, needed when the recipe's ``opacity_prior`` is on.
        source: the model file, named in errors.

    Raises:
        ModelError: the recipe draws a prior whose model was not given.
    """

    def __init__(self, recipe: MapRecipe | None = None, calibration: Calibration | None = None,
                 lung_fields: LungFieldEstimator | None = None, opacity_template: OpacityTemplate | None = None,
                 source: str | os.PathLike | None = None) -> None:
        recipe = recipe or MapRecipe()
        models = "pilletgan model calibrate --lung-fields LUNG_FIELDS.pt"
        if recipe.needs_lung_fields and lung_fields is None:
            raise ModelError("localization lung_prior and opacity_prior need a lung-field model: the card must name "
                             f"one in 'lung_fields', beside it ({models})", source)
        if recipe.needs_opacity_template and opacity_template is None:
            raise ModelError("localization opacity_prior needs the opacity-location template: the card must name one "
                             f"in 'opacity_prior', beside it ({models} --opacity-prior OPACITY_PRIOR.pt)", source)
        self._recipe = recipe
        self.calibration = calibration or Calibration()
        self.lung_fields = lung_fields
        self.opacity_template = opacity_template
        self.source = source

    @classmethod
    def from_card(cls, card: Mapping[str, Any], weights: str | os.PathLike | None = None,
                  lung_fields: LungFieldEstimator | None = None,
                  opacity_template: OpacityTemplate | None = None) -> Localizer:
        """The localizer of a model card; the priors its recipe draws are loaded from the files the card names
        beside ``weights`` (default: the card's ``path``) unless given."""
        recipe, calibration = localization_from_card(card)
        if lung_fields is None and recipe.needs_lung_fields:
            path = companion_path(dict(card), "lung_fields", weights)
            lung_fields = LungFieldEstimator.from_path(path) if path is not None else None
        if opacity_template is None and recipe.needs_opacity_template:
            path = companion_path(dict(card), "opacity_prior", weights)
            opacity_template = OpacityTemplate.from_path(path) if path is not None else None
        return cls(recipe, calibration, lung_fields, opacity_template, weights or card.get("path"))

    @property
    def recipe(self) -> MapRecipe:
        return self._recipe

    def with_recipe(self, recipe: MapRecipe) -> Localizer:
        """The same priors and calibration with another recipe (its priors checked again)."""
        return Localizer(recipe, self.calibration, self.lung_fields, self.opacity_template, self.source)

    def to(self, device: torch.device | str) -> Localizer:
        if self.lung_fields is not None:
            self.lung_fields.to(device)
        return self

    # -- network grid ---------------------------------------------------------------------------------------
    def mirrored_healing(self, heal: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
                         ) -> torch.Tensor | None:
        """``heal`` of the left-right mirrored ``images``, mirrored back, when the recipe averages the mirrored
        pass in (``mirror_average``); else ``None`` (no second pass)."""
        if not self.recipe.mirror_average:
            return None
        return heal(images.flip(-1)).flip(-1)

    def gates(self, images: torch.Tensor, valid: torch.Tensor, lungs: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(map gates, score gates)`` of ``(B, 1, N, N)`` images with valid-area masks ``valid``.

        The score gate is the valid area minus the border; with ``lung_gate`` the map gate is that times the
        lung fields (``lungs`` when given, e.g. cached by training's ``LungFieldsd``, else estimated on each
        image and widened by ``lung_margin``), weighted as ``lung_weighting`` says, and with ``score_region='map'``
        the score gate keeps the binary lung fields.
        """
        recipe = self.recipe
        border = border_gates(valid, recipe.border_fraction)
        if not recipe.lung_gate:
            return border, border
        if lungs is None:
            lungs = torch.stack([torch.from_numpy(lung_fields_gate(image[0].float().cpu().numpy(), recipe.lung_margin))
                                 for image in images])[:, None]
        lungs = torch.as_tensor(lungs).as_subclass(torch.Tensor).cpu()
        weights = torch.stack([lung_map_weights(mask[0], recipe.lung_weighting) for mask in lungs])[:, None]
        return border * weights, (border * lungs.float() if recipe.score_region == "map" else border)

    def lesion_maps(self, images: torch.Tensor, healed: torch.Tensor, valid: torch.Tensor,
                    mirrored_healed: torch.Tensor | None = None, lungs: torch.Tensor | None = None) -> LesionMaps:
        """Lesion maps and detection scores of a batch: ``images`` and their ``healed`` twins ``(B, 1, N, N)``,
        ``valid`` their valid-area masks, ``mirrored_healed`` the :meth:`mirrored_healing` the recipe needs, and
        optionally cached lung-field masks ``lungs`` (see :meth:`gates`)."""
        recipe = self.recipe
        map_gates, score_gates = self.gates(images, valid, lungs)
        counts = (score_gates.flatten(1) > 0).sum(1).tolist()  # the gates are made on the host: no device read
        diff = self._difference(images, healed)
        score_gates = score_gates.to(diff.device, diff.dtype)
        scores = _top_percent_means(diff * score_gates, recipe.top_percent, counts)
        if recipe.mirror_average:
            if mirrored_healed is None:
                raise ConfigurationError("localization mirror_average needs the healed twin of the mirrored image "
                                         "(Localizer.mirrored_healing)")
            diff = (diff + self._difference(images, mirrored_healed.to(diff.device))) / 2
        map_gates = map_gates.to(diff.device, diff.dtype)
        diff = diff * map_gates
        if recipe.asymmetry > 0:
            diff = (diff - recipe.asymmetry * diff.flip(-1)).clamp_min(0)
        lung_priors, opacity_priors = self._priors(images)
        if lung_priors is not None:
            diff = diff + recipe.lung_prior * lung_priors.to(diff.device, diff.dtype)
        if opacity_priors is not None:
            weights = recipe.opacity_prior * scores.to(diff.dtype).clamp_min(0)[:, None, None, None]
            diff = diff + weights * opacity_priors.to(diff.device, diff.dtype)
        return LesionMaps(diff, scores, map_gates, opacity_priors)

    def _difference(self, images: torch.Tensor, healed: torch.Tensor) -> torch.Tensor:
        signed = images.float() - healed.float()
        diff = signed.abs() if self.recipe.difference == "absolute" else signed.clamp_min(0)
        sigma = self.recipe.smoothing_sigma * images.shape[-1] / 256
        if sigma > 0:
            diff = torch.as_tensor(GaussianSmooth(sigma=sigma)(diff[:, 0]))[:, None]  # batch as channels
        return diff

    def _priors(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(lung-field prior, opacity-location prior)`` the recipe adds, each ``(B, 1, N, N)`` or ``None``; the
        lung-field boxes are predicted once for both."""
        recipe = self.recipe
        if not recipe.needs_lung_fields:
            return None, None
        boxes = self.lung_fields.boxes(images).to(images.device)
        size = images.shape[-1]
        return (lung_box_prior(boxes, size) if recipe.lung_prior > 0 else None,
                self.opacity_template.maps(boxes, size) if recipe.opacity_prior > 0 else None)

    # -- source grid ----------------------------------------------------------------------------------------
    def heat_and_mask(self, lesion_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heat map in [0, 1] and cleaned mask of a source-grid lesion map (:mod:`PilletGANLib.postprocess`)."""
        heat, components = self._heat_and_components(lesion_map)
        return heat, components.mask

    def heat_mask_boxes(self, lesion_map: np.ndarray, pixel_spacing: Sequence[float] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[LesionBox]]:
        """:meth:`heat_and_mask` and the mask's scored boxes (the image labelled once)."""
        heat, components = self._heat_and_components(lesion_map)
        return heat, components.mask, connected_boxes(components, heat, pixel_spacing)

    def _heat_and_components(self, lesion_map: np.ndarray) -> tuple[np.ndarray, MaskComponents]:
        heat = heat_from_difference(lesion_map, self.calibration.heat_scale)
        return heat, mask_components(heat, self.calibration.threshold, self.recipe.min_component_fraction)


def _top_percent_means(diff: torch.Tensor, top_percent: float, counts: Sequence[int]) -> torch.Tensor:
    """Mean of the top ``top_percent`` % of each map's gated pixels (``counts`` of them per map), shape ``(B,)``."""
    flat = diff.flatten(1)
    scores = []
    for values, count in zip(flat, counts, strict=True):
        k = max(1, round(count * top_percent / 100))
        scores.append(values.topk(k).values.mean())
    return torch.stack(scores)
