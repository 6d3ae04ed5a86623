"""Calibrating the heat-map scale and the mask threshold on healthy validation images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.manifest import ManifestRecord
from ..errors import DataError
from .lesion_map import LocalizationConfig
from .predictor import Predictor, PreparedImage, prepare_image

__all__ = ["calibrate", "recalibrate_model"]


def calibrate(predictor: Predictor, healthy: Sequence[PreparedImage], percentile: float = 99.0,
              scale_percentile: float = 99.9) -> dict[str, float]:
    """Fit ``heat_scale`` and ``threshold`` of the predictor's localization settings on healthy images.

    ``heat_scale`` is the ``scale_percentile`` of the gated difference over all healthy pixels, so heat
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
            inside = gates[index, 0].numpy() > 0
            values.append(diff[index, 0].float().cpu().numpy()[inside])
    pooled = np.concatenate(values)
    heat_scale = float(max(np.percentile(pooled, scale_percentile), 1e-6))
    threshold = float(np.clip(np.percentile(np.clip(pooled / heat_scale, 0, 1), percentile), 1e-3, 1.0))
    predictor.localization.heat_scale = heat_scale
    predictor.localization.threshold = threshold
    return {"heat_scale": heat_scale, "threshold": threshold, "percentile": percentile,
            "scale_percentile": scale_percentile, "healthy_images": len(healthy)}


def recalibrate_model(model: str | os.PathLike | None, records: Sequence[ManifestRecord], out: str | os.PathLike,
                      localization: dict[str, Any] | None = None, percentile: float = 99.0,
                      progress: bool = True) -> dict[str, Any]:
    """Save a copy of ``model`` whose localization settings are changed and whose heat scale and mask
    threshold are refitted on the healthy images of ``records`` (the weights are not touched).

    Returns the new card. The copy is written as ``out`` (``.pt``) with its ``.json`` card beside it.
    """
    from tqdm import tqdm

    from ..model_store import load_model, save_model
    from ..reading import load_cxr

    state, card, source = load_model(model)
    predictor = Predictor.from_path(source)
    settings = {**predictor.localization.to_dict(), **(localization or {})}
    predictor.localization = LocalizationConfig.from_dict(settings)
    healthy = [r for r in records if not r.is_disease]
    if not healthy:
        raise DataError("recalibration needs healthy images in the given records")
    prepared = [prepare_image(*load_cxr(r.image), predictor.image_size, predictor.margin)
                for r in tqdm(healthy, desc="calibration images", disable=not progress)]
    fitted = calibrate(predictor, prepared, percentile)
    new_card = {k: v for k, v in card.items() if k not in ("sha256", "weights_file", "format")}
    new_card["localization"] = predictor.localization.to_dict()
    new_card["calibration"] = {**fitted, "recalibrated_from": str(source), "source_sha256": card["sha256"]}
    save_model(state, new_card, out)
    return new_card
