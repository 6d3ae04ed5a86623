"""Combining trained PilletGAN models into one generator-ensemble model (``pilletgan model ensemble``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..localization import card_sections, localization_from_card
from ..model_store import companion_path, copy_beside, load_model, save_model
from ..networks import ensemble_size

__all__ = ["SHARED_CARD_KEYS", "combine_models"]

#: Card entries every member must share: the ensemble runs them on the same input towards the same domain.
SHARED_CARD_KEYS = ("network", "preprocessing", "domains", "healthy_index")


def combine_models(models: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """Write ``out`` (``.pt`` + card): one model whose weights hold the generators of ``models``, averaged at
    inference (:class:`~PilletGANLib.networks.GeneratorEnsemble`).

    Every member must be a single generator with the same network, preprocessing and domains (checked, with the
    differing entry named). The new card takes the first member's localization settings and companion models
    (copied beside ``out``) and lists each member's source, SHA-256, training record and calibration under
    ``ensemble``. Its heat scale and mask threshold are the first member's, so the ensemble must be calibrated
    (``pilletgan model calibrate``) before its masks mean anything; the card says so under ``calibration``.
    Returns the new card.
    """
    if len(models) < 2:
        raise ModelError(f"an ensemble needs at least two models, got {len(models)}")
    out = Path(out)
    loaded = [load_model(model) for model in models]
    first_card = loaded[0][1]
    state: dict = {}
    members = []
    for index, (member_state, card, path) in enumerate(loaded):
        if ensemble_size(card) != 1:
            raise ModelError("is already an ensemble; combine the single models it lists instead", path)
        for key in SHARED_CARD_KEYS:
            if card.get(key) != first_card.get(key):
                raise ModelError(f"its '{key}' differs from the first model's ({loaded[0][2]}): {card.get(key)!r} "
                                 f"against {first_card.get(key)!r}; ensemble members must share it", path)
        state.update({f"members.{index}.{key}": value for key, value in member_state.items()})
        members.append({"source": str(path), "sha256": card["sha256"], "training": card.get("training"),
                        "calibration": card.get("calibration")})
    new_card = {k: v for k, v in first_card.items()
                if k not in ("sha256", "weights_file", "format", "training", "calibration", "lung_fields",
                             "opacity_prior")}
    for key in ("lung_fields", "opacity_prior"):
        companion = companion_path(first_card, key, loaded[0][2])
        if companion is not None:
            new_card[key] = copy_beside(companion, out)
    new_card["ensemble"] = members
    new_card.update(card_sections(*localization_from_card(first_card),
                                  {"status": "not calibrated: heat_scale and threshold are the first member's; run "
                                             "pilletgan model calibrate on this model"}))
    save_model(state, new_card, out)
    return new_card
