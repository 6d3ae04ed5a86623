"""Training configuration: defaults from the design, a JSON/YAML file, and ``--set key=value`` overrides."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigurationError
from ..inference.lesion_map import LocalizationConfig

__all__ = ["TrainingConfig", "load_config", "parse_overrides"]


@dataclass
class TrainingConfig:
    """Everything a training run needs besides the data. Defaults follow Fixed-Point GAN."""

    # data
    image_size: int = 256
    margin: float = 1.0
    batch_size: int = 16
    num_workers: int = 2
    cache_dir: str | None = None
    augment: bool = True
    edit_region: str = "image"
    # network
    attention: str = "lta"
    attention_at: list[str] | None = None
    fusion: str = "add"
    output: str = "tanh_residual"
    base_channels: int = 64
    num_res_blocks: int = 6
    disc_base_channels: int = 64
    disc_layers: int = 6
    # optimisation
    iterations: int = 20000
    max_minutes: float = 0.0  # wall-time budget of one session (0: none); stops early, then exports
    n_critic: int = 5
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_start: float = 0.5
    ema_decay: float = 0.999
    lambda_gp: float = 10.0
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_id: float = 10.0
    lambda_att: float = 0.1
    amp: bool = False
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = False
    # monitoring
    val_interval: int = 1000
    checkpoint_interval: int = 1000
    log_interval: int = 50
    image_log_interval: int = 500
    best_metric: str = "detection_auc"
    val_max_images: int | None = None
    # localization (exported with the model)
    localization: dict[str, Any] = field(default_factory=lambda: LocalizationConfig().to_dict())
    calibration_percentile: float = 99.0

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.image_size % 4:
            raise ConfigurationError(f"image_size must be a multiple of 4 and at least 16, got {self.image_size}")
        if self.attention not in ("lta", "none"):
            raise ConfigurationError(f"attention must be 'lta' or 'none', got '{self.attention}'")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ConfigurationError(f"batch_size must be even and >= 2 (half healthy, half disease), got {self.batch_size}")
        for name in ("iterations", "n_critic", "val_interval", "checkpoint_interval", "log_interval", "base_channels"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_minutes < 0:
            raise ConfigurationError(f"max_minutes must be >= 0 (0: no wall-time limit), got {self.max_minutes}")
        self.localization = LocalizationConfig.from_dict(self.localization).to_dict()
        for prior, model in (("lung_prior", "--lung-fields LUNG_FIELDS.pt"),
                             ("opacity_prior", "--opacity-prior OPACITY_PRIOR.pt --lung-fields LUNG_FIELDS.pt")):
            if self.localization[prior] > 0:
                raise ConfigurationError(f"localization.{prior} is not used while training (validation scores the "
                                         f"GAN's own map): add it to the trained model with pilletgan calibrate --set "
                                         f"localization.{prior}=A {model}")
        if self.edit_region not in ("image", "lungs"):
            raise ConfigurationError(f"edit_region must be 'image' or 'lungs', got '{self.edit_region}'")
        if self.edit_region == "lungs" and not (self.localization["lung_gate"]
                                                and self.localization["score_region"] == "map"):
            raise ConfigurationError("edit_region=lungs trains the generator to change only the lung fields: set "
                                     "localization.lung_gate=true and localization.score_region=map so that "
                                     "maps and scores read only what it was trained to change")

    def network_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``PilletGenerator`` (stored in the model card)."""
        kwargs = {"in_channels": 1, "num_domains": 2, "base_channels": self.base_channels,
                  "num_res_blocks": self.num_res_blocks, "attention": self.attention, "fusion": self.fusion,
                  "output": self.output}
        if self.attention_at is not None:
            kwargs["attention_at"] = list(self.attention_at)
        return kwargs

    def discriminator_kwargs(self) -> dict[str, Any]:
        return {"in_channels": 1, "num_domains": 2, "image_size": self.image_size,
                "base_channels": self.disc_base_channels, "num_layers": self.disc_layers}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, text: str, current: Any) -> Any:
    """Turn an override string into the type of the field's current value (``null`` clears an optional one)."""
    if text.lower() == "null" or (current is None and text.lower() == "none"):
        return None
    if isinstance(current, str):
        return text
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"--set {name}={text}: expected true or false")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError as err:
            raise ConfigurationError(f"--set {name}={text}: expected an integer") from err
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError as err:
            raise ConfigurationError(f"--set {name}={text}: expected a number") from err
    if isinstance(current, list | dict) or text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigurationError(f"--set {name}={text}: not valid YAML/JSON") from err
    if current is None:
        return yaml.safe_load(text)
    return text


def parse_overrides(pairs: list[str] | None, base: dict[str, Any], config_class: type = TrainingConfig
                    ) -> dict[str, Any]:
    """Apply ``key=value`` pairs to ``base``, typed by the fields of the dataclass ``config_class``;
    ``localization.key=value`` sets a localization field."""
    known = {f.name for f in fields(config_class)}
    out = dict(base)
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigurationError(f"--set expects key=value, got '{pair}'")
        key, text = (s.strip() for s in pair.split("=", 1))
        if key.startswith("localization."):
            sub = key.split(".", 1)[1]
            defaults = LocalizationConfig().to_dict()
            if sub not in defaults:
                raise ConfigurationError(f"unknown localization setting '{sub}' (known: {sorted(defaults)})")
            current = dict(out.get("localization") or {})  # only what is set: the rest stays as it was
            current[sub] = _coerce(key, text, current.get(sub, defaults[sub]))
            out["localization"] = current
            continue
        if key not in known:
            raise ConfigurationError(f"unknown setting '{key}' (known: {', '.join(sorted(known))})")
        default = config_class.__dataclass_fields__[key]
        current = out.get(key, default.default if default.default is not default.default_factory else None)
        out[key] = _coerce(key, text, current)
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None, config_class: type = TrainingConfig) -> Any:
    """Defaults, then ``base`` (e.g. a resumed run's config), then the file, then ``--set`` overrides, as a
    ``config_class`` (the GAN's :class:`TrainingConfig` unless told otherwise)."""
    values: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.suffix in (".yaml", ".yml") \
                else json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigurationError(f"the training configuration cannot be read ({err})", path) from err
        if not isinstance(loaded, dict):
            raise ConfigurationError("the training configuration must be a mapping of settings", path)
        unknown = set(loaded) - {f.name for f in fields(config_class)}
        if unknown:
            raise ConfigurationError(f"unknown settings {sorted(unknown)}", path)
        values.update(loaded)
    values = parse_overrides(overrides, values, config_class)
    try:
        return config_class(**values)
    except TypeError as err:
        raise ConfigurationError(f"invalid training configuration: {err}") from err
