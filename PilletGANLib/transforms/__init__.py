"""MONAI transforms for chest radiographs: loading, intensity, invertible geometry, lesions."""

from .geometry import CXRGeometry, SquarePadResize, SquarePadResized
from .io import LoadCXRd, cxr_meta
from .pipeline import DEFAULT_PERCENTILES, cxr_preprocessing, intensity_normalization

__all__ = [
    "DEFAULT_PERCENTILES",
    "CXRGeometry",
    "LoadCXRd",
    "SquarePadResize",
    "SquarePadResized",
    "cxr_meta",
    "cxr_preprocessing",
    "intensity_normalization",
]
