"""Warm start: begin a training run from the networks of an earlier run's checkpoint."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch

from ..errors import ConfigurationError

__all__ = ["warm_start"]

logger = logging.getLogger(__name__)


def warm_start(path: str | os.PathLike, generator: torch.nn.Module, discriminator: torch.nn.Module
               ) -> dict[str, torch.Tensor] | None:
    """Load the ``generator`` (required) and ``discriminator`` weights of a checkpoint (``checkpoint_*.pt`` of
    ``pilletgan train``, or any file with those keys; any float dtype) into the networks, in place.

    Optimizers, iteration count and learning-rate schedule are not taken: the run starts at iteration 0.
    Returns the checkpoint's ``ema`` weights (None when it has none), for the caller's EMA copy. Raises
    :class:`ConfigurationError` naming the file when it cannot be read or its networks do not match the run's.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise ConfigurationError(f"init_from: the checkpoint cannot be read ({err})", path) from err
    if not isinstance(state, dict) or not isinstance(state.get("generator"), dict):
        raise ConfigurationError("init_from: the checkpoint holds no 'generator' weights", path)
    networks = {"generator": generator, "discriminator": discriminator}
    for name, network in networks.items():
        if name not in state:
            logger.warning("init_from %s: no %s weights; it starts from its initialization", path, name)
            continue
        try:
            network.load_state_dict(state[name])
        except RuntimeError as err:
            raise ConfigurationError(f"init_from: the {name} does not match this run's settings ({err})",
                                     path) from err
    ema = state.get("ema")
    return ema if isinstance(ema, dict) else None
