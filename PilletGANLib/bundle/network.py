"""Weights into the bundle's network: a PilletGAN model file loaded into ``HealthyTranslator.from_card(card)``."""

from __future__ import annotations

import os

import torch

from ..errors import ModelError
from ..model_store import load_model

__all__ = ["load_weights"]


def load_weights(network: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of a PilletGAN model (``.pt`` + ``.json`` card, SHA-256 checked) into ``network``."""
    state, _, weights = load_model(path, map_location="cpu")
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"the weights do not fit the network the bundle built ({err})", weights) from err
