"""Which Python requirements the module still needs, without downgrading what Slicer ships."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["SLICER_PROVIDED", "installed_version", "no_downgrade_constraints", "read_requirements",
           "unmet_requirements"]

#: Packages that come with Slicer (or the PyTorch extension): never installed, upgraded or downgraded by this module.
SLICER_PROVIDED = ("numpy", "scipy", "SimpleITK", "pillow", "requests", "packaging", "torch")


def installed_version(name: str) -> str | None:
    """Installed version of distribution ``name``, ``None`` if absent."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_requirements(path: str | os.PathLike) -> list[str]:
    """Requirement lines of a requirements file, without comments, blank lines and pip options."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def unmet_requirements(requirements: Iterable[str],
                       version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """The requirements whose package is missing or installed at a version outside the specifier.

    Requirements whose environment marker does not apply here are considered met.
    """
    from packaging.requirements import Requirement

    unmet = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = version_of(requirement.name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(text)
    return unmet


def no_downgrade_constraints(packages: Iterable[str] = SLICER_PROVIDED,
                             version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """pip constraint lines (``name>=installed``) that forbid pip to downgrade the installed ``packages``."""
    constraints = []
    for name in packages:
        version = version_of(name)
        if version is not None:
            constraints.append(f"{name}>={version}")
    return constraints
