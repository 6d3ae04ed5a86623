"""The documentation as a front door: short README and model card, the two commands, CI running the README's test
commands, every metric defined, links that resolve, no verb of an earlier release."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
MODEL_CARD = REPO_ROOT / "Resources" / "bundle" / "PilletGAN_CXR" / "docs" / "README.md"
DOCS = REPO_ROOT / "docs"


def fenced_lines(text: str) -> list[str]:
    """The lines inside the text's fenced code blocks."""
    return [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for line in block.splitlines()]


def test_readme_and_model_card_are_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 150
    assert len(MODEL_CARD.read_text(encoding="utf-8").splitlines()) < 200  # model-zoo cards: 80-160 lines


def test_the_first_command_installs_the_cpu_build_and_says_how_to_get_cuda() -> None:
    text = README.read_text(encoding="utf-8")
    first = next(line for line in fenced_lines(text) if "pilletgan demo" in line)
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in first
    assert first.index("--index-url") < first.index("pip install -e .")
    assert "CUDA" in text and "pytorch.org" in text


def test_ci_runs_exactly_the_readme_test_commands_fast_tier_first() -> None:
    readme_commands = [line.split("#")[0].strip() for line in fenced_lines(README.read_text(encoding="utf-8"))
                       if line.startswith("python -m pytest")]
    assert readme_commands == ['python -m pytest Testing -m "not slow"', "python -m pytest Testing -m slow",
                               "python -m pytest Testing/test_slicer_scene.py"]
    # the optional slicer-core stage runs last, with its tests required to run rather than skip
    ci = [line.strip().removeprefix("PILLETGAN_REQUIRE_SLICER_CORE=1 ")
          for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if "python -m pytest" in line and not line.lstrip().startswith("#")]
    assert ci == readme_commands
    assert "--index-url https://download.pytorch.org/whl/cpu" in (REPO_ROOT / ".ci" / "run").read_text()


def test_every_reported_metric_is_defined_in_the_metrics_page() -> None:
    from PilletGANLib.engine.evaluator import LOCALIZATION_METRICS
    from PilletGANLib.evaluation.accumulator import METRIC_KEYS
    from PilletGANLib.evaluation.floors import FLOORS, MODEL_PRIOR_FLOOR

    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for key in (*METRIC_KEYS, *LOCALIZATION_METRICS, *FLOORS, MODEL_PRIOR_FLOOR):
        assert f"`{key}`" in text, f"docs/metrics.md does not define {key}"


@pytest.mark.parametrize("page", [README, MODEL_CARD, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_links_resolve_and_no_verb_of_an_earlier_release_is_left(page) -> None:
    from PilletGANLib.cli import MOVED

    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if not target.startswith("http"):
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"
    for old in MOVED:
        assert not re.search(rf"pilletgan {re.escape(old)}\b", text), f"{page.name} still says 'pilletgan {old}'"


def test_repository_license_is_the_apache_text_setup_py_names() -> None:
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert 'license="Apache-2.0"' in (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
