"""Fitting the opacity-location prior (:mod:`PilletGANLib.inference.opacity_prior`) on SIIM's training folds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.sources.siim import build_siim_covid_manifest
from ..data.sources.siim_lung_fields import LUNG_BOX_FILE, read_siim_lung_fields
from ..errors import DataError
from ..inference.opacity_prior import EXTENT, OpacityPrior, fit_opacity_template

__all__ = ["fit_siim_opacity_prior"]


def fit_siim_opacity_prior(src: str | os.PathLike, out: str | os.PathLike, val_folds: Sequence[int] = (3,),
                           grid: int = 48) -> dict[str, Any]:
    """Fit the template on the disease images (Typical Appearance with opacity boxes) of the pre-resized SIIM
    folds not in ``val_folds``, framed by each image's radiologist lung-field box; save it to ``out``.

    Returns a summary: the saved path, the image count and where the template peaks.
    """
    records = build_siim_covid_manifest(src, split_by="fold", val_folds=val_folds)
    lung_boxes = {r.image: r.box for r in read_siim_lung_fields(src)}
    frames = [(lung_boxes[r.image], r.boxes) for r in records
              if r.split == "train" and r.is_disease and len(r.boxes) and r.image in lung_boxes]
    if not frames:
        raise DataError(f"no training image with opacity and lung-field boxes outside folds {sorted(val_folds)}", src)
    template, used = fit_opacity_template(frames, grid)
    data = {"source": Path(src).name, "train_images": used, "val_folds": sorted(val_folds),
            "labels": ["labels/boxes_256.csv", str(LUNG_BOX_FILE)],
            "images": "Typical Appearance studies with opacity boxes"}
    prior = OpacityPrior(template, {"name": "PilletGAN opacity-location prior", "extent": list(EXTENT),
                                    "coordinates": "u, v = 0 at the lung-field box's left/top edge, 1 at its "
                                                   "right/bottom edge; template[v, u], mirror-averaged",
                                    "training": {"data": data}})
    path = prior.save(out)
    row, col = divmod(int(template.argmax()), grid)
    low, high = EXTENT
    peak = {"value": float(template.max()), "u": low + (col + 0.5) * (high - low) / grid,
            "v": low + (row + 0.5) * (high - low) / grid}
    return {"model": str(path), **data, "peak": peak}
