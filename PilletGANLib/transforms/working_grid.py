"""Images read at reduced resolution for the network: the reduced grid, its exact area resampling to the network
grid, and its resampling back to the source grid for display.

A radiograph read for an ``N`` px network needs far fewer pixels than a 2,000 px detector holds. Read with
``load_cxr(path, N)``, a DICOM image is kept at the coarsest power-of-two reduction whose longer side is still at
least ``2 N`` (every network pixel then averages 2 x 2 or more read pixels): JPEG 2000 decoded at that level of its
wavelet pyramid, any other pixel data averaged over ``f x f`` blocks once read (``f = 2 ** level``;
:mod:`PilletGANLib.dicom.reduced_resolution`). Reduced pixel ``(r, c)`` covers source pixels
``[r f, (r + 1) f) x [c f, (c + 1) f)``, the last row and column clipped to the image, so the reduced grid keeps the
source geometry exactly: ``meta["original_shape"]`` is the source grid, ``meta["reduced_resolution_level"]`` the
number of halvings.

The network input is then the area average, over each network pixel's square of the padded source image, of the
reduced image read as constant over each reduced pixel (:func:`reduced_to_network`). Where every block lies inside
one network pixel that is what :meth:`~PilletGANLib.transforms.geometry.CXRGeometry.image_to_network` computes from
the full image; elsewhere it differs by the share of the blocks that straddle network pixels. Lesion maps, masks and
DICOM SEG stay on the source grid; only an overlay needs the image there, and :func:`reduced_to_source` resamples
it (bilinear) when it is drawn.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..dicom.reduced_resolution import reduced_shape
from .geometry import CXRGeometry, turn

__all__ = ["reduced_to_network", "reduced_to_source"]


def _overlap_weights(length: int, before: int, square: int, size: int, factor: int) -> torch.Tensor:
    """``(size, ceil(length / factor))``: the share of network pixel ``i``'s interval of the padded square that
    reduced pixel ``r`` covers, along one axis of ``length`` source pixels placed ``before`` pixels into the
    square."""
    cells = np.arange(size + 1, dtype=np.float64) * square / size
    starts = np.minimum(np.arange(math.ceil(length / factor), dtype=np.float64) * factor, length) + before
    ends = np.minimum(starts - before + factor, length) + before
    overlap = np.minimum(cells[1:, None], ends[None, :]) - np.maximum(cells[:-1, None], starts[None, :])
    return torch.from_numpy(np.clip(overlap, 0.0, None) * size / square)


def reduced_to_network(image: torch.Tensor, geometry: CXRGeometry, level: int, pad_value: float) -> torch.Tensor:
    """``(1, size, size)`` network input from ``image``, ``(1, ceil(rows / f), ceil(cols / f))`` at ``level``
    halvings of ``geometry``'s source grid: each network pixel the area average of its square of the source image
    padded with ``pad_value`` (see the module's docstring), turned by the geometry's ``orientation``."""
    expected = reduced_shape((geometry.rows, geometry.cols), level)
    if tuple(image.shape[-2:]) != expected:
        raise ValueError(f"a {geometry.rows} x {geometry.cols} image at {level} halvings is {expected[0]} x "
                         f"{expected[1]}, not {image.shape[-2]} x {image.shape[-1]}")
    top, _, left, _ = geometry.pad
    factor = 2**level
    along_rows = _overlap_weights(geometry.rows, top, geometry.square, geometry.size, factor)
    along_cols = _overlap_weights(geometry.cols, left, geometry.square, geometry.size, factor)
    inside = torch.outer(along_rows.sum(1), along_cols.sum(1))
    network = along_rows @ image[0].double() @ along_cols.T + pad_value * (1.0 - inside)
    return turn(network[None].float(), geometry.orientation).contiguous()


def reduced_to_source(image: np.ndarray, shape: tuple[int, int], level: int) -> np.ndarray:
    """``image`` at ``level`` halvings back on the ``shape`` source grid (bilinear, pixel centres aligned): for
    display."""
    if level == 0:
        return image
    factor = 2**level
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    full = F.interpolate(tensor, size=(image.shape[0] * factor, image.shape[1] * factor), mode="bilinear",
                         align_corners=False)
    return full[0, 0, : shape[0], : shape[1]].numpy()
