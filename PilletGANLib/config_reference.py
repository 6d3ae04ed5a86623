"""The configuration reference, ``docs/config.md``, rendered from the settings' own docstrings.

Each settings dataclass documents every field in its ``Attributes:`` section; :func:`render` turns them into one
Markdown page with the defaults, and ``Testing/test_config_reference.py`` fails when the page and the code
drift apart. Regenerate it with ``python -m PilletGANLib.config_reference docs/config.md``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .engine.classifier import ClassifierTrainingConfig
from .engine.config import TrainingConfig
from .localization.recipe import Calibration, MapRecipe
from .priors.training import LungFieldTrainingConfig

__all__ = ["SECTIONS", "field_docs", "render"]

#: ``(title, settings class, key prefix, where the settings are set)`` in page order.
SECTIONS: tuple[tuple[str, type, str, str], ...] = (
    ("Training", TrainingConfig, "",
     "`pilletgan train --config FILE --set KEY=VALUE` (a file lists only what differs from the defaults, e.g. "
     "`Resources/training/*.json`); the bundle's `train.json` `settings`."),
    ("Lesion-map recipe", MapRecipe, "localization.",
     "A model card's `localization` section; `pilletgan train --set localization.KEY=VALUE` for a new model, "
     "`pilletgan model calibrate --set localization.KEY=VALUE` for a trained one (which refits the calibration)."),
    ("Calibration", Calibration, "calibration.",
     "Fitted, not set: a model card's `calibration` section, written by `pilletgan train` and `pilletgan model "
     "calibrate` on healthy validation images (`pilletgan infer --threshold` overrides the mask threshold)."),
    ("Lung-field model training", LungFieldTrainingConfig, "",
     "`pilletgan prior lung-fields` (`--epochs`); the others are the shipped model's and are recorded in its card."),
    ("Classifier baseline training", ClassifierTrainingConfig, "",
     "`pilletgan model train-classifier --config FILE --set KEY=VALUE`; recorded in the baseline's card "
     "(`training.config`)."),
)


def field_docs(settings: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of a settings class's docstring.

    Raises:
        ValueError: a field is not described, or a described name is not a field.
    """
    lines = (inspect.getdoc(settings) or "").splitlines()
    if "Attributes:" not in lines:
        raise ValueError(f"{settings.__name__} has no 'Attributes:' section in its docstring")
    docs: dict[str, str] = {}
    name = None
    for line in lines[lines.index("Attributes:") + 1:]:
        entry = re.fullmatch(r" {4}(\w+): (.*)", line)
        if entry:
            name = entry.group(1)
            docs[name] = entry.group(2)
        elif line.startswith(" " * 8) and name is not None:
            docs[name] += " " + line.strip()
        elif line.strip():
            break
    names = [f.name for f in fields(settings)]
    missing, extra = [n for n in names if n not in docs], sorted(set(docs) - set(names))
    if missing or extra:
        raise ValueError(f"{settings.__name__}: fields without a description {missing}, descriptions of no field {extra}")
    return {n: docs[n] for n in names}


def _default(field: Any) -> str:
    if field.default is not MISSING:
        value = field.default
    elif field.default_factory is not MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if isinstance(value, dict):
        return "see below" if value else "{}"
    return f"`{json.dumps(value)}`"


def render() -> str:
    """The Markdown text of ``docs/config.md``."""
    out = ["# Configuration reference", "",
           "Every setting, its default and what it does, generated from the docstrings of the classes that define "
           "them (`python -m PilletGANLib.config_reference docs/config.md`; a test fails when this page and the code "
           "differ). Files and `--set` list only what differs from these defaults.", ""]
    for title, settings, prefix, where in SECTIONS:
        out += [f"## {title}", "", f"`{settings.__module__}.{settings.__qualname__}`. {where}", "",
                "| key | default | meaning |", "|---|---|---|"]
        docs = field_docs(settings)
        for field in fields(settings):
            text = docs[field.name].replace("|", "\\|")
            out.append(f"| `{prefix}{field.name}` | {_default(field)} | {text} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the configuration reference (docs/config.md).")
    parser.add_argument("out", type=Path, help="the Markdown file to write")
    args = parser.parse_args(argv)
    args.out.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
