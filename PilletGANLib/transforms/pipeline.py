"""The preprocessing chain shared by training, inference, the bundle and the Slicer module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, ScaleIntensityRange, ScaleIntensityRangePercentilesd

from ..dicom.grey_levels import ROBUST_PERCENTILES
from .geometry import CXRGeometry, SquarePadResized
from .io import LoadCXRd
from .working_grid import reduced_to_network, reduced_to_source

__all__ = ["DEFAULT_PERCENTILES", "PreparedImage", "cxr_preprocessing", "intensity_normalization", "normalize_intensity",
           "prepare_image", "source_grid_image"]

#: Robust intensity window: these percentiles of each image map to the ends of the output range (the reader refuses
#: an image where they are equal).
DEFAULT_PERCENTILES = ROBUST_PERCENTILES


def _check_margin(margin: float) -> None:
    if not 0 < margin <= 1:
        raise ValueError(f"margin must lie in (0, 1], got {margin}")


def intensity_normalization(keys: str | Sequence[str] = "image", margin: float = 1.0,
                            percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> ScaleIntensityRangePercentilesd:
    """Map each image's robust percentiles to ``[-margin, margin]`` and clip.

    ``margin < 1`` (margin-safe normalization) keeps pixels off the asymptotes of a ``tanh`` output,
    so a generator can reproduce every input value exactly.
    """
    _check_margin(margin)
    return ScaleIntensityRangePercentilesd(keys, lower=percentiles[0], upper=percentiles[1],
                                           b_min=-margin, b_max=margin, clip=True)


def normalize_intensity(image: torch.Tensor, margin: float = 1.0,
                        percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> torch.Tensor:
    """What :func:`intensity_normalization` does to one image, with both percentiles found in one pass over the
    pixels (MONAI's transform makes one pass per percentile: 54 against 27 ms for a 1955 x 1841 radiograph) by
    ``np.percentile`` at every size: below a million pixels MONAI's transform calls ``torch.quantile``, which sorts
    (15 against 2 ms for 489 x 461 pixels) and interpolates in float32, up to 1e-5 of the range off the exact
    percentile."""
    _check_margin(margin)
    low, high = np.percentile(np.asarray(image), np.asarray(percentiles, dtype=np.float64))
    return ScaleIntensityRange(a_min=float(low), a_max=float(high), b_min=-margin, b_max=margin, clip=True)(image)


def cxr_preprocessing(size: int = 256, keys: str | Sequence[str] = "image", margin: float = 1.0,
                      load: bool = True) -> Compose:
    """Load (optional), normalize to ``[-margin, margin]``, pad to square and resize to ``size``.

    The square pad + resize is invertible: ``Invertd`` or :class:`CXRGeometry` maps outputs back.
    Padding takes the darkest value, ``-margin``, like air.
    """
    transforms = [LoadCXRd(keys)] if load else []
    transforms += [intensity_normalization(keys, margin), SquarePadResized(keys, size, pad_value=-margin)]
    return Compose(transforms)


@dataclass
class PreparedImage:
    """A radiograph read and preprocessed for the network, with what is needed to map back.

    ``image`` is the source-grid image as read, or a function of no arguments that reads it again (from a reading
    worker asked not to send it back: :func:`~PilletGANLib.inference.reading_workers.prepared_batches`).
    """

    image: np.ndarray | Callable[[], np.ndarray]
    meta: dict[str, Any]
    network_input: torch.Tensor
    geometry: CXRGeometry


def prepare_image(image: np.ndarray, meta: dict[str, Any], size: int, margin: float) -> PreparedImage:
    """An image already read (``H x W``, air dark), normalized to ``[-margin, margin]`` by robust percentiles,
    padded to square and resized to ``size``: the dictionary-free form of :func:`cxr_preprocessing`.

    An image read at reduced resolution (``meta["reduced_resolution_level"]`` halvings of ``meta["original_shape"]``,
    :mod:`.working_grid`) is resampled to the network with the source geometry; its ``image`` is then a function
    that resamples it to the source grid when read (:func:`source_grid_image`). An image stored in another layout
    than ``L\\F`` reaches the network turned by ``meta["reorientation"]`` (:class:`CXRGeometry`'s ``orientation``).
    """
    tensor = torch.as_tensor(
        normalize_intensity(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None], margin)).float()
    level, turn = _reduction(meta), int(meta.get("reorientation") or 0)
    if not level:
        geometry = CXRGeometry(int(image.shape[0]), int(image.shape[1]), size, turn)
        return PreparedImage(image, meta, geometry.image_to_network(tensor, pad_value=-margin), geometry)
    geometry = CXRGeometry(*_source_shape(meta), size, turn)
    return PreparedImage(source_grid_image(image, meta), meta, reduced_to_network(tensor, geometry, level, -margin),
                         geometry)


def source_grid_image(image: np.ndarray, meta: dict[str, Any]) -> np.ndarray | Callable[[], np.ndarray]:
    """``image`` as :func:`~PilletGANLib.load_cxr` read it, on the source grid: itself when read in full, else a
    function of no arguments that resamples it there (for an overlay)."""
    level = _reduction(meta)
    return partial(reduced_to_source, image, _source_shape(meta), level) if level else image


def _reduction(meta: dict[str, Any]) -> int:
    return int(meta.get("reduced_resolution_level") or 0)


def _source_shape(meta: dict[str, Any]) -> tuple[int, int]:
    rows, cols = meta["original_shape"]
    return int(rows), int(cols)
