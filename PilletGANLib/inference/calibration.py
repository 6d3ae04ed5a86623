"""Calibrating a model's heat-map scale, mask threshold and detection operating point on healthy images
(``pilletgan model calibrate``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.manifest import ManifestRecord
from ..errors import DataError
from ..localization import (
    DEFAULT_SPECIFICITY,
    Localizer,
    MapRecipe,
    card_sections,
    fit_calibration,
    localization_from_card,
)
from ..model_store import companion_path, copy_beside, load_model, save_model
from ..priors import LungFieldEstimator, OpacityTemplate
from ..transforms.pipeline import PreparedImage, prepare_image
from .predictor import Predictor

__all__ = ["calibrate", "recalibrate_model"]


def calibrate(predictor: Predictor, healthy: Sequence[PreparedImage], percentile: float = 99.0,
              scale_percentile: float = 99.9, specificity: float = DEFAULT_SPECIFICITY) -> dict[str, Any]:
    """Fit the predictor's calibration (heat scale, mask threshold, and the detection threshold at
    ``specificity``) on healthy images and set it on its localizer
    (:func:`~PilletGANLib.localization.fit_calibration`). Returns the fitted values and their record."""
    if not healthy:
        raise ValueError("calibration needs at least one healthy validation image")
    pairs, scores = [], []
    for start in range(0, len(healthy), predictor.batch_size):
        _, _, maps = predictor.network_maps(healthy[start: start + predictor.batch_size])
        pairs += [(maps.maps[i, 0].float().cpu().numpy(), maps.map_gates[i, 0].cpu().numpy())
                  for i in range(maps.maps.shape[0])]
        scores += [float(s) for s in maps.scores.float().cpu()]
    calibration, record = fit_calibration(pairs, percentile, scale_percentile, scores=scores, specificity=specificity)
    predictor.localizer.calibration = calibration
    return {**calibration.to_dict(), **record}


def recalibrate_model(model: str | os.PathLike | None, records: Sequence[ManifestRecord], out: str | os.PathLike,
                      localization: dict[str, Any] | None = None, percentile: float = 99.0,
                      progress: bool = True, lung_fields: str | os.PathLike | None = None,
                      opacity_prior: str | os.PathLike | None = None,
                      specificity: float = DEFAULT_SPECIFICITY) -> dict[str, Any]:
    """Save a copy of ``model`` whose recipe settings are changed (``localization``) and whose calibration is
    refitted on the healthy images of ``records`` (the weights are not touched), the detection threshold at
    ``specificity`` of those images.

    ``lung_fields`` is a lung-field model for the recipe's ``lung_prior`` or ``opacity_prior`` (default: the one
    the card names) and ``opacity_prior`` an opacity-location template; both are copied beside ``out`` and named in
    the new card. Returns the new card, written as ``out`` (``.pt``) with its ``.json`` card beside it.
    """
    from tqdm import tqdm

    from ..reading import load_cxr

    state, card, source = load_model(model)
    recipe, calibration = localization_from_card(card)
    recipe = MapRecipe.from_dict({**recipe.to_dict(), **(localization or {})})
    lung_fields_path = Path(lung_fields) if lung_fields is not None else companion_path(card, "lung_fields", source)
    template_path = Path(opacity_prior) if opacity_prior is not None else companion_path(card, "opacity_prior", source)
    localizer = Localizer(
        recipe, calibration,
        LungFieldEstimator.from_path(lung_fields_path) if recipe.needs_lung_fields and lung_fields_path else None,
        OpacityTemplate.from_path(template_path) if recipe.needs_opacity_template and template_path else None, source)
    predictor = Predictor.from_path(source, localizer=localizer)
    healthy = [r for r in records if not r.is_disease]
    if not healthy:
        raise DataError("recalibration needs healthy images in the given records")
    prepared = [prepare_image(*load_cxr(r.image), predictor.image_size, predictor.margin)
                for r in tqdm(healthy, desc="calibration images", disable=not progress)]
    fitted = calibrate(predictor, prepared, percentile, specificity=specificity)
    new_card = {k: v for k, v in card.items() if k not in ("sha256", "weights_file", "format", "lung_fields",
                                                            "opacity_prior")}
    new_card.update(card_sections(recipe, predictor.localizer.calibration,
                                  {**fitted, "recalibrated_from": str(source), "source_sha256": card["sha256"]}))
    for key, path in (("lung_fields", lung_fields_path), ("opacity_prior", template_path)):
        if path is not None:
            new_card[key] = copy_beside(path, Path(out))
    save_model(state, new_card, out)
    return new_card
