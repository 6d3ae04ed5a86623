"""Model files: a generator state dict (``.pt``) plus its card (``.json`` beside it).

The card holds what is needed to use the weights — network configuration, preprocessing,
localization settings with the calibrated threshold — the SHA-256 of the weights, which the loader
checks before loading anything, and the training record. Weights load with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import ModelError
from .values import is_finite_number

__all__ = ["DEFAULT_MODEL_ENV", "card_number", "card_path_for", "companion_path", "copy_beside", "default_model_path",
           "load_model", "load_network", "preprocessing_settings", "read_card", "save_model", "sha256_file"]

#: Environment variable that overrides the shipped default model.
DEFAULT_MODEL_ENV = "PILLETGAN_MODEL"
_BUNDLE_MODEL = Path("bundle") / "PilletGAN_CXR" / "models" / "model.pt"
CARD_FORMAT = "pilletgan-model-card"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_number(card: Mapping[str, Any], key: str, default: float, *, section: str | None = None,
                integer: bool = False, low: float | None = None, high: float | None = None) -> int | float:
    """The number a model card holds at ``card[section][key]`` (``card[key]`` without ``section``), ``default`` when
    absent: a card is a file a user may have edited, and a string, a boolean, NaN or an absurd size there would
    otherwise fail deep inside the network or the map (or ask for terabytes).

    Raises:
        ModelError: the value is not a finite number (a whole one with ``integer``) in ``[low, high]``.
    """
    values = card.get(section) if section is not None else card
    name = f"{section}.{key}" if section is not None else key
    if values is None:
        return default
    if not isinstance(values, Mapping):
        raise ModelError(f"the model card's '{section}' is {type(values).__name__}, not a mapping", card.get("path"))
    value = values.get(key, default)
    wanted = "a whole number" if integer else "a number"
    if not is_finite_number(value, integer):
        raise ModelError(f"the model card's {name} is {value!r}, not {wanted}", card.get("path"))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ModelError(f"the model card's {name} is {value!r}, outside [{low}, {high}]", card.get("path"))
    return int(value) if integer else float(value)


def preprocessing_settings(card: Mapping[str, Any], default_size: int) -> tuple[int, float]:
    """``(image_size, margin)`` of a card's ``preprocessing``: the network's side (a multiple of 4 from 32 to 2,048
    pixels; ``default_size`` when absent) and the normalization margin (0.01 to 1; 1 when absent).

    Raises:
        ModelError: either is not such a number.
    """
    size = card_number(card, "image_size", default_size, section="preprocessing", integer=True, low=32, high=2048)
    if size % 4:
        raise ModelError(f"the model card's preprocessing.image_size is {size}, not a multiple of 4", card.get("path"))
    return size, card_number(card, "margin", 1.0, section="preprocessing", low=0.01, high=1.0)


def card_path_for(weights: str | os.PathLike) -> Path:
    """The card of ``model.pt`` is ``model.json`` in the same folder."""
    return Path(weights).with_suffix(".json")


def companion_path(card: dict[str, Any], key: str, weights: str | os.PathLike | None = None) -> Path | None:
    """The companion model a card names under ``key`` (``lung_fields``, ``opacity_prior``): a file name beside
    the card's ``weights`` (by default ``card["path"]``), or ``None``. Only the name's last component is used,
    so a card cannot point elsewhere."""
    name = card.get(key)
    if not name:
        return None
    base = weights if weights is not None else card.get("path")
    if base is None:
        raise ModelError(f"the card names a '{key}' model but not where its own weights are", None)
    return Path(base).parent / Path(str(name)).name


def copy_beside(weights: Path, out: Path) -> str:
    """Copy a companion model file and its card into ``out``'s folder (unless already there); return the file name."""
    target = out.parent / weights.name
    if target.exists() and sha256_file(target) == sha256_file(weights):
        return weights.name
    if target.exists():
        raise ModelError(f"{target} exists and is not the companion model {weights}; remove it or write the new "
                         "model into another folder", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, target)
    shutil.copyfile(card_path_for(weights), card_path_for(target))
    return weights.name


def default_model_path() -> Path:
    """The shipped model: ``$PILLETGAN_MODEL``, else the bundle's ``models/model.pt`` in the source tree
    (editable installs, the Slicer module), else the copy installed under ``<prefix>/share/pilletgan``."""
    override = os.environ.get(DEFAULT_MODEL_ENV)
    if override:
        return Path(override)
    candidates = [Path(__file__).resolve().parents[1] / "Resources" / _BUNDLE_MODEL,
                  Path(sys.prefix) / "share" / "pilletgan" / _BUNDLE_MODEL]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError("the default model is not installed (looked in "
                     + ", ".join(str(c) for c in candidates) + "); pass --model PATH or set "
                     f"{DEFAULT_MODEL_ENV}")


def read_card(weights: str | os.PathLike) -> dict[str, Any]:
    """Read and check the card beside ``weights``."""
    card_path = card_path_for(weights)
    if not card_path.is_file():
        raise ModelError(f"no model card {card_path.name} beside the weights; a PilletGAN model is a .pt state dict "
                         "with its .json card (network configuration, calibration, SHA-256)", weights)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"the model card cannot be read ({err})", card_path) from err
    for key in ("network", "sha256"):
        if key not in card:
            raise ModelError(f"the model card lacks '{key}'", card_path)
    return card


def load_model(weights: str | os.PathLike | None = None, map_location: str | torch.device = "cpu"
               ) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Return ``(state_dict, card, path)`` after checking the weights' SHA-256 against the card.

    ``weights=None`` loads the shipped default model.
    """
    path = Path(weights) if weights is not None else default_model_path()
    if not path.is_file():
        raise ModelError("model file not found", path)
    card = read_card(path)
    actual = sha256_file(path)
    if actual != card["sha256"]:
        raise ModelError(f"checksum mismatch: the weights have SHA-256 {actual} but the card expects {card['sha256']}; "
                         "the file is damaged or not the model the card describes — refusing to load it", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ModelError(f"the weights cannot be loaded safely ({type(err).__name__}: {err})", path) from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError("the file is not a generator state dict", path)
    return state, card, path


def load_network(weights: str | os.PathLike | None, build: Callable[[dict[str, Any]], torch.nn.Module]
                 ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(network, card)``: :func:`load_model`, then ``build(card)`` loaded with the weights; the card gains ``path``.

    Errors of ``build`` and weights that do not fit the network raise :class:`ModelError` naming the file.
    """
    state, card, path = load_model(weights)
    try:
        network = build(card)
        network.load_state_dict(state)
    except ModelError as err:
        raise ModelError(str(err), path) from err
    except (TypeError, RuntimeError) as err:
        raise ModelError(f"the weights do not fit the network the card describes ({err})", path) from err
    return network, {**card, "path": str(path)}


def save_model(state_dict: dict[str, torch.Tensor], card: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``path`` (state dict) and its card with the SHA-256 filled in; both written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, tmp)
    os.replace(tmp, path)
    full_card = {"format": CARD_FORMAT, **card, "sha256": sha256_file(path), "weights_file": path.name}
    card_path = card_path_for(path)
    tmp_card = card_path.with_name(card_path.name + ".tmp")
    tmp_card.write_text(json.dumps(full_card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp_card, card_path)
    return path
