"""MONAI transforms for chest radiographs: loading, intensity, invertible geometry, lungs, lesions."""

from .geometry import CXRGeometry, SquarePadResize, SquarePadResized
from .io import LoadCXRd, cxr_meta
from .lesions import InsertSyntheticOpacity, InsertSyntheticOpacityd, insert_synthetic_opacity
from .lungs import estimate_lung_mask, lung_prior_mask
from .pipeline import DEFAULT_PERCENTILES, cxr_preprocessing, intensity_normalization

__all__ = [
    "DEFAULT_PERCENTILES",
    "CXRGeometry",
    "InsertSyntheticOpacity",
    "InsertSyntheticOpacityd",
    "LoadCXRd",
    "SquarePadResize",
    "SquarePadResized",
    "cxr_meta",
    "cxr_preprocessing",
    "estimate_lung_mask",
    "insert_synthetic_opacity",
    "intensity_normalization",
    "lung_prior_mask",
]
