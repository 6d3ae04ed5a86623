"""Calibrating the heat-map scale and the mask threshold on healthy validation images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import ManifestRecord
from ..errors import ConfigurationError, DataError
from .lesion_map import LocalizationConfig
from .lung_fields import LungFieldEstimator, lung_field_model_path
from .opacity_prior import OpacityPrior
from .predictor import Predictor, PreparedImage, prepare_image

__all__ = ["calibrate", "recalibrate_model"]


def calibrate(predictor: Predictor, healthy: Sequence[PreparedImage], percentile: float = 99.0,
              scale_percentile: float = 99.9) -> dict[str, float]:
    """Fit ``heat_scale`` and ``threshold`` of the predictor's localization settings on healthy images.

    ``heat_scale`` is the ``scale_percentile`` of the map over all healthy pixels it covers (the map gate, and
    where ``localization.lung_prior`` or ``opacity_prior`` adds to it), so heat
    1.0 means "a difference almost never seen on a healthy image"; ``threshold`` is the ``percentile``
    of the healthy heat values, so about ``100 - percentile`` % of healthy pixels are (falsely) masked.
    Returns the fitted values and sets them on ``predictor.localization``.
    """
    if not healthy:
        raise ValueError("calibration needs at least one healthy validation image")
    values = []
    for start in range(0, len(healthy), predictor.batch_size):
        chunk = healthy[start: start + predictor.batch_size]
        _, _, diff, _ = predictor.network_maps(chunk)
        gates, _ = predictor.gates(chunk)
        for index in range(diff.shape[0]):
            values_map = diff[index, 0].float().cpu().numpy()
            inside = (gates[index, 0].numpy() > 0) | (values_map > 0)  # a lung prior reaches past the gate
            values.append(values_map[inside])
    pooled = np.concatenate(values)
    heat_scale = float(max(np.percentile(pooled, scale_percentile), 1e-6))
    threshold = float(np.clip(np.percentile(np.clip(pooled / heat_scale, 0, 1), percentile), 1e-3, 1.0))
    predictor.localization.heat_scale = heat_scale
    predictor.localization.threshold = threshold
    return {"heat_scale": heat_scale, "threshold": threshold, "percentile": percentile,
            "scale_percentile": scale_percentile, "healthy_images": len(healthy)}


def recalibrate_model(model: str | os.PathLike | None, records: Sequence[ManifestRecord], out: str | os.PathLike,
                      localization: dict[str, Any] | None = None, percentile: float = 99.0,
                      progress: bool = True, lung_fields: str | os.PathLike | None = None,
                      opacity_prior: str | os.PathLike | None = None) -> dict[str, Any]:
    """Save a copy of ``model`` whose localization settings are changed and whose heat scale and mask
    threshold are refitted on the healthy images of ``records`` (the weights are not touched).

    ``lung_fields`` is a lung-field model for ``localization.lung_prior`` (default: the one the card names);
    it is copied beside ``out`` and named in the new card; ``opacity_prior`` likewise for
    ``localization.opacity_prior``. Returns the new card. The copy is written as
    ``out`` (``.pt``) with its ``.json`` card beside it.
    """
    from tqdm import tqdm

    from ..model_store import companion_path, copy_beside, load_model, save_model
    from ..reading import load_cxr

    state, card, source = load_model(model)
    predictor = Predictor.from_path(source)
    lung_fields_path = Path(lung_fields) if lung_fields is not None else lung_field_model_path(card, source)
    if lung_fields is not None:
        predictor.lung_fields = LungFieldEstimator.from_path(lung_fields).to(predictor.device)
    settings = {**predictor.localization.to_dict(), **(localization or {})}
    predictor.localization = LocalizationConfig.from_dict(settings)
    opacity_prior_path = Path(opacity_prior) if opacity_prior is not None else companion_path(card, "opacity_prior",
                                                                                               source)
    if opacity_prior is not None:
        predictor.opacity_prior = OpacityPrior.from_path(opacity_prior)
    if predictor.localization.lung_prior > 0 and predictor.lung_fields is None:
        raise ConfigurationError("localization.lung_prior needs a lung-field model: the card names none, pass one "
                                 "(--lung-fields)")
    if predictor.localization.opacity_prior > 0 and (predictor.opacity_prior is None or predictor.lung_fields is None):
        raise ConfigurationError("localization.opacity_prior needs the opacity-location prior and a lung-field model: "
                                 "pass those the card does not name (--opacity-prior, --lung-fields)")
    healthy = [r for r in records if not r.is_disease]
    if not healthy:
        raise DataError("recalibration needs healthy images in the given records")
    prepared = [prepare_image(*load_cxr(r.image), predictor.image_size, predictor.margin)
                for r in tqdm(healthy, desc="calibration images", disable=not progress)]
    fitted = calibrate(predictor, prepared, percentile)
    new_card = {k: v for k, v in card.items() if k not in ("sha256", "weights_file", "format")}
    new_card["localization"] = predictor.localization.to_dict()
    for key, path in (("lung_fields", lung_fields_path), ("opacity_prior", opacity_prior_path)):
        new_card.pop(key, None)
        if path is not None:
            new_card[key] = copy_beside(path, Path(out))
    new_card["calibration"] = {**fitted, "recalibrated_from": str(source), "source_sha256": card["sha256"]}
    save_model(state, new_card, out)
    return new_card
