"""Training configuration: defaults, files and ``--set`` overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from PilletGANLib.engine.config import TrainingConfig, load_config
from PilletGANLib.errors import ConfigurationError


def test_flat_overrides_take_the_field_types() -> None:
    config = load_config(overrides=["image_size=64", "batch_size=8", "iterations=30", "attention=none",
                                    "base_channels=16", "num_res_blocks=2", "amp=true", "val_interval=5", "seed=3",
                                    "lambda_id=2.5", "attention_at=[res1, up2]", "cache_dir=/tmp/cache"])
    assert (config.image_size, config.batch_size, config.iterations, config.seed) == (64, 8, 30, 3)
    assert config.attention == "none", "'none' is a value of attention, not a null"
    assert config.amp is True and config.lambda_id == 2.5
    assert config.attention_at == ["res1", "up2"] and config.cache_dir == "/tmp/cache"
    assert load_config(overrides=["cache_dir=null"], base={"cache_dir": "/x"}).cache_dir is None


def test_localization_overrides_and_file_then_set_order(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("image_size: 128\nbatch_size: 4\nlocalization:\n  lung_gate: true\n")
    config = load_config(path, ["batch_size=6", "localization.top_percent=2.5"])
    assert config.image_size == 128 and config.batch_size == 6
    assert config.localization["lung_gate"] is True and config.localization["top_percent"] == 2.5
    json_path = tmp_path / "config.json"
    json_path.write_text(json.dumps({"iterations": 7}))
    assert load_config(json_path).iterations == 7


@pytest.mark.parametrize("override, message", [
    ("image_size=250", "multiple of 4"),
    ("batch_size=3", "even"),
    ("attention=maybe", "'lta' or 'none'"),
    ("iterations=many", "integer"),
    ("amp=perhaps", "true or false"),
    ("colour=blue", "unknown setting 'colour'"),
    ("localization.blur=3", "unknown localization setting"),
    ("localization.lung_prior=0.1", "pilletgan model calibrate"),
    ("image_size", "key=value"),
])
def test_bad_settings_are_refused_with_their_name(override: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_config(overrides=[override])


@pytest.mark.parametrize("override, message", [
    ("lr_g=nan", "lr_g must be a number, got nan"),
    ("lr_d=-1", "lr_d must lie within"),
    ("beta1=1.5", "beta1 must lie within"),
    ("ema_decay=inf", "ema_decay must be a number, got inf"),
    ("lambda_gp=-1", "lambda_gp must lie within"),
    ("margin=0", "margin must lie within"),
    ("image_size=16", "image_size must lie within [32, 2048]"),  # a card of 16 px cannot be loaded
    ("seed=-1", "seed must lie within"),
    ("num_workers=-1", "num_workers must lie within"),
    ("calibration_percentile=101", "calibration_percentile must lie within"),
    ("fusion=mean", "fusion must be one of"),
    ("output=sigmoid", "output must be one of"),
    ("best_metric=loss", "best_metric must be one of"),
    ("attention_at=[res9]", "attention_at must be null or a list of"),
    ("val_max_images=0", "val_max_images must lie within"),
    ("localization=3", "localization must be a mapping"),
    ("batch_scaling=cubic", "batch_scaling must be one of"),
    ("reference_batch=0", "reference_batch must lie within"),
])
def test_settings_of_the_wrong_type_or_out_of_range_are_refused_before_any_data_is_read(override: str,
                                                                                          message: str) -> None:
    """lr_g=nan, beta1=1.5, a negative loss weight or an unknown fusion loaded and failed (or trained nonsense) only
    after the data were prepared; localization=3 raised AttributeError."""
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_config(overrides=[override])


def test_a_files_settings_of_the_wrong_type_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    for settings, message in (({"augment": "yes"}, "augment must be true or false"),
                              ({"iterations": 1.5}, "iterations must be a whole number"),
                              ({"image_size": "64"}, "image_size must be a whole number"),
                              ({"cache_dir": 3}, "cache_dir must be a path or null"),
                              ({"iterations": 10**400}, "iterations must be a whole number")):  # not OverflowError
        path.write_text(json.dumps(settings))
        with pytest.raises(ConfigurationError, match=message):
            load_config(path)
    path.write_text(json.dumps({"iterations": 7.0, "lr_g": 1}))
    config = load_config(path)
    assert (config.iterations, config.lr_g) == (7, 1.0) and isinstance(config.iterations, int)


def test_unknown_key_in_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"imagesize": 64}))
    with pytest.raises(ConfigurationError, match="imagesize"):
        load_config(path)


@pytest.mark.parametrize("rule, lr_factor", [("none", 1.0), ("sqrt", 2.0), ("linear", 4.0)])
def test_batch_scaling_scales_the_learning_rates_and_keeps_the_ema_horizon_in_images(rule: str,
                                                                                     lr_factor: float) -> None:
    config = load_config(overrides=["batch_size=32", "reference_batch=16", "lr_g=1e-4", "lr_d=3e-4",
                                    "ema_decay=0.99", f"batch_scaling={rule}"])
    scaled = config.batch_scaled(world_size=2)  # a global batch of 64: four times the reference
    assert scaled["ratio"] == 4.0
    assert scaled["lr_g"] == pytest.approx(1e-4 * lr_factor) and scaled["lr_d"] == pytest.approx(3e-4 * lr_factor)
    expected_decay = 0.99 if rule == "none" else 0.99 ** 4  # one update of 64 images = four of 16
    assert scaled["ema_decay"] == pytest.approx(expected_decay)
    assert config.lr_g == 1e-4 and config.batch_scaled(world_size=1)["ratio"] == 2.0


def test_network_kwargs_follow_the_settings() -> None:
    config = TrainingConfig(attention="none", base_channels=32, num_res_blocks=4, output="clamp_residual")
    assert config.network_kwargs() == {"in_channels": 1, "num_domains": 2, "base_channels": 32, "num_res_blocks": 4,
                                       "attention": "none", "fusion": "add", "output": "clamp_residual"}
    assert config.discriminator_kwargs()["image_size"] == 256


def test_config_reference_is_generated_from_the_documented_settings() -> None:
    """Every setting is described where it is defined, and ``docs/config.md`` is that description rendered."""
    from conftest import REPO_ROOT

    from PilletGANLib.config_reference import SECTIONS, field_docs, render

    for _, settings, _, _ in SECTIONS:
        assert all(text.strip() for text in field_docs(settings).values())
    assert (REPO_ROOT / "docs" / "config.md").read_text(encoding="utf-8") == render(), \
        "docs/config.md is out of date: python -m PilletGANLib.config_reference docs/config.md"


def test_a_setting_without_a_description_is_caught() -> None:
    from dataclasses import dataclass

    from PilletGANLib.config_reference import field_docs

    @dataclass
    class Settings:
        """Two settings.

        Attributes:
            documented: has a description
                over two lines.
            other: not a field.
        """

        documented: int = 1
        forgotten: int = 2

    with pytest.raises(ValueError, match=r"without a description \['forgotten'\], descriptions of no field \['other'\]"):
        field_docs(Settings)


def test_recipe_files_list_only_what_differs_from_the_defaults() -> None:
    from conftest import REPO_ROOT

    from PilletGANLib.localization import MapRecipe

    defaults, recipe = TrainingConfig().to_dict(), MapRecipe().to_dict()
    for path in sorted((REPO_ROOT / "Resources" / "training").glob("*.json")):
        settings = json.loads(path.read_text())
        localization = settings.pop("localization", {})
        assert settings and all(value != defaults[key] for key, value in settings.items()), path.name
        assert all(value != recipe[key] for key, value in localization.items()), path.name
        assert load_config(path).to_dict()["image_size"] == settings.get("image_size", defaults["image_size"])
