"""PilletGANLib: pneumonia localization on chest radiographs with PILLET-GAN.

The library behind the ``pilletgan`` command, the MONAI bundle and the 3D Slicer module.
It never imports Slicer.
"""

from .errors import PilletGANError
from .reading import load_cxr
from .version import __version__

__all__ = ["PilletGANError", "__version__", "load_cxr"]
