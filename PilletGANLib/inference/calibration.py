"""Calibrating the heat-map scale and the mask threshold on healthy validation images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .predictor import Predictor, PreparedImage

__all__ = ["calibrate"]


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
        gates = predictor.gates(chunk)
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
