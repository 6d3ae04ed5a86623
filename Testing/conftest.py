"""Shared fixtures: the project's own sample radiographs, the real data folder (skipped with a message when absent)
and scratch space.

``dicom_dir`` is the folder of sample radiographs the tests make themselves (``dicom_factory.write_sample_dicoms``:
the demo phantom in every encoding and header trait the reader handles), so the DICOM, SEG, batch and infer tests
run on every machine. ``real_dicom_dir`` is ``../shared/data/dicom`` for the tests that need real anatomy.
"""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def onnx_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own ``$PILLETGAN_CACHE_DIR`` (inherited by the commands tests start), never the user's."""
    folder = tmp_path_factory.mktemp("pilletgan_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PILLETGAN_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder."""
    return require_shared_data()


@pytest.fixture(scope="session")
def real_dicom_dir() -> Path:
    """The folder of real chest radiograph DICOM files (skips without ../shared/data)."""
    return require_shared_data("dicom")


@pytest.fixture(scope="session")
def dicom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's sample radiographs (``dicom_factory.SAMPLE_FILES``), written once per session."""
    from dicom_factory import write_sample_dicoms

    folder = tmp_path_factory.mktemp("sample_dicoms")
    write_sample_dicoms(folder)
    return folder


def make_tiny_model(path: Path, attention: str = "none", image_size: int = 32, seed: int = 0) -> Path:
    """An untrained, tiny generator saved as a PilletGAN model (``.pt`` + checksummed ``.json`` card)."""
    import torch

    from PilletGANLib.model_store import save_model
    from PilletGANLib.networks import PilletGenerator

    torch.manual_seed(seed)
    network = {"base_channels": 8, "num_res_blocks": 1, "attention": attention}
    card = {"name": "tiny-untrained", "network": network, "preprocessing": {"image_size": image_size, "margin": 1.0}}
    return save_model(PilletGenerator(**network).state_dict(), card, path)


def healthy_manifest(path: Path, count: int) -> tuple[Path, list[Path]]:
    """A manifest at ``path`` of ``count`` healthy 64 px phantom images (written beside it), all in the ``val``
    split; returns it and the images."""
    import csv

    from phantom_data import write_class_folders

    folders = write_class_folders(path.parent / f"{path.stem}_images", per_class=count, images_per_patient=1)
    images = folders.images_of("train", "healthy")[:count]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "split"])
        writer.writerows([[str(image), "healthy", "val"] for image in images])
    return path, images


@pytest.fixture(scope="session")
def phantom_folders(tmp_path_factory: pytest.TempPathFactory):
    """A 64 px class-folder dataset in the NIH layout made from the phantom (``phantom_data.write_class_folders``)."""
    from phantom_data import write_class_folders

    return write_class_folders(tmp_path_factory.mktemp("phantom64") / "nih_like", per_class=12)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained model (32 px), shared by tests that need any model rather than a good one."""
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def orthanc(tmp_path: Path):
    """A fresh Orthanc PACS (DICOMweb and DICOM) on free loopback ports; skips when Orthanc is not installed."""
    from orthanc import Orthanc

    server = Orthanc(tmp_path / "orthanc").start()
    yield server
    server.stop(graceful=False)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread: the float summation order, hence a trained network, then does not depend on core count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
