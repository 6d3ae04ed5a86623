"""PilletGANLib: pneumonia localization on chest radiographs with PILLET-GAN.

The library behind the ``pilletgan`` command, the MONAI bundle and the 3D Slicer module.
It never imports Slicer. Importing the package loads nothing heavy: ``load_cxr`` (the reader, pydicom and
the image libraries) is imported on first use, so the Slicer module can import
:mod:`PilletGANLib.postprocess` without torch or MONAI and ``pilletgan --help`` starts at once.
"""

from typing import Any

from .errors import PilletGANError
from .version import __version__

__all__ = ["PilletGANError", "__version__", "load_cxr"]


def __getattr__(name: str) -> Any:
    if name == "load_cxr":
        from .reading import load_cxr

        return load_cxr
    raise AttributeError(f"module 'PilletGANLib' has no attribute '{name}'")
