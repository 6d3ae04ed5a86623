"""Shared fixtures: the real data folder (skipped with a message when absent) and scratch space."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DICOM_DIR = SHARED_DATA / "dicom"


def require_shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (tests that need ../shared/data skip on "
                    "machines without it; CI has it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder."""
    return require_shared_data()


@pytest.fixture(scope="session")
def dicom_dir() -> Path:
    """The folder of real chest radiograph DICOM files."""
    return require_shared_data("dicom")
