"""Square padding + resizing to the network grid, with an exact inverse back to the source grid.

A radiograph of ``H x W`` is padded symmetrically to ``S x S`` (``S = max(H, W)``) and resized to
``N x N``. :class:`CXRGeometry` holds that mapping so that maps and boxes predicted at network
resolution land on the same place in the source image; :class:`SquarePadResize` /
:class:`SquarePadResized` apply it as MONAI invertible transforms (``Invertd`` works on them).

A radiograph stored mirrored, upside down, rotated or transposed (its header's Patient Orientation,
:func:`~PilletGANLib.dicom.orientation.reorientation`) reaches the network turned to the frontal ``L\\F`` layout the
model reads: the geometry's ``orientation`` is that turn, applied on the square network grid (a permutation of its
pixels), with the padding placed so that the network input is exactly that of the image stored ``L\\F``. Maps come
back turned to the stored grid.

Coordinates are continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform, Transform
from monai.utils import convert_to_tensor

from ..dicom.orientation import FLIP_COLUMNS, FLIP_ROWS, TRANSPOSE
from .io import CXR_META_KEY, cxr_meta

__all__ = ["CXRGeometry", "SquarePadResize", "SquarePadResized", "turn", "unturn"]


def turn(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``image`` (``(..., H, W)``) turned by ``orientation``: transposed, then its rows, then its columns reversed,
    as its bits say (:func:`~PilletGANLib.dicom.orientation.turned` for numpy arrays)."""
    if orientation & TRANSPOSE:
        image = image.transpose(-2, -1)
    dims = [dim for bit, dim in ((FLIP_ROWS, -2), (FLIP_COLUMNS, -1)) if orientation & bit]
    return image.flip(dims) if dims else image


def unturn(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """The inverse of :func:`turn`."""
    dims = [dim for bit, dim in ((FLIP_ROWS, -2), (FLIP_COLUMNS, -1)) if orientation & bit]
    image = image.flip(dims) if dims else image
    return image.transpose(-2, -1) if orientation & TRANSPOSE else image


@dataclass(frozen=True)
class CXRGeometry:
    """Mapping between a source image grid (``rows x cols``) and a square network grid (``size``); ``orientation``
    (the bits of :mod:`PilletGANLib.dicom.orientation`: 4 transpose, then 2 reverse the rows, then 1 the columns)
    turns the stored image to the network's layout (0: as stored)."""

    rows: int
    cols: int
    size: int
    orientation: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.orientation <= 7:
            raise ValueError(f"orientation must be 0 to 7 (bits of a turn), got {self.orientation}")

    @property
    def square(self) -> int:
        """Side of the padded square in source pixels."""
        return max(self.rows, self.cols)

    @property
    def turned_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the image turned as the network reads it."""
        return (self.cols, self.rows) if self.orientation & TRANSPOSE else (self.rows, self.cols)

    def _turned_pad(self) -> tuple[int, int, int, int]:
        """Padding ``(top, bottom, left, right)`` of the turned image: symmetric, the odd pixel after."""
        rows, cols = self.turned_shape
        extra_r, extra_c = self.square - rows, self.square - cols
        return extra_r // 2, extra_r - extra_r // 2, extra_c // 2, extra_c - extra_c // 2

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """Padding ``(top, bottom, left, right)`` of the stored image in source pixels: each side gets what the
        turned image's side it becomes gets."""
        top, bottom, left, right = self._turned_pad()
        if self.orientation & FLIP_ROWS:
            top, bottom = bottom, top
        if self.orientation & FLIP_COLUMNS:
            left, right = right, left
        return (left, right, top, bottom) if self.orientation & TRANSPOSE else (top, bottom, left, right)

    @property
    def scale(self) -> float:
        """Network pixels per source pixel."""
        return self.size / self.square

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    # -- points and boxes -------------------------------------------------------------------
    def points_to_network(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` source ``(x, y)`` coordinates to the network grid."""
        top, _, left, _ = self.pad
        xy = (np.asarray(xy, dtype=np.float64) + np.array([left, top])) * self.scale
        if self.orientation & TRANSPOSE:
            xy = xy[..., ::-1]
        return self._flipped(xy)

    def points_to_source(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` network ``(x, y)`` coordinates back to the source grid."""
        top, _, left, _ = self.pad
        xy = self._flipped(np.asarray(xy, dtype=np.float64))
        if self.orientation & TRANSPOSE:
            xy = xy[..., ::-1]
        return xy / self.scale - np.array([left, top])

    def _flipped(self, xy: np.ndarray) -> np.ndarray:
        """Network ``(x, y)`` coordinates reversed along the axes ``orientation`` flips (its own inverse)."""
        flips = np.array([bool(self.orientation & FLIP_COLUMNS), bool(self.orientation & FLIP_ROWS)])
        return np.where(flips, self.size - xy, xy) if flips.any() else xy

    def boxes_to_network(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(n, 4)`` source boxes ``(x1, y1, x2, y2)`` to the network grid."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return _ordered(self.points_to_network(boxes.reshape(-1, 2, 2)).reshape(-1, 4))

    def boxes_to_source(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map ``(n, 4)`` network boxes ``(x1, y1, x2, y2)`` back to the source grid."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = _ordered(self.points_to_source(boxes.reshape(-1, 2, 2)).reshape(-1, 4))
        if clip:
            out[:, 0::2] = out[:, 0::2].clip(0, self.cols)
            out[:, 1::2] = out[:, 1::2].clip(0, self.rows)
        return out

    # -- images -----------------------------------------------------------------------------
    def valid_mask(self) -> np.ndarray:
        """Boolean ``size x size`` mask of network pixels whose centre lies inside the source image (decided on the
        turned image, so that a centre on its edge falls as it does for the image stored upright)."""
        centres = (np.arange(self.size) + 0.5) / self.scale
        top, _, left, _ = self._turned_pad()
        rows, cols = self.turned_shape
        rows_ok = (centres >= top) & (centres < top + rows)
        cols_ok = (centres >= left) & (centres < left + cols)
        return rows_ok[:, None] & cols_ok[None, :]

    def image_to_network(self, image: torch.Tensor, pad_value: float | None = None, mode: str = "area") -> torch.Tensor:
        """Pad ``(C, rows, cols)`` to the square with ``pad_value`` (default: the image minimum) and resize."""
        top, bottom, left, right = self.pad
        value = float(image.min()) if pad_value is None else pad_value
        square = F.pad(image[None].float(), (left, right, top, bottom), mode="constant", value=value)
        if self.square != self.size:
            kwargs = {} if mode in ("area", "nearest", "nearest-exact") else {"align_corners": False}
            square = F.interpolate(square, size=(self.size, self.size), mode=mode, **kwargs)
        return turn(square[0], self.orientation).contiguous()

    def image_to_source(self, image: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Resize ``(C, size, size)`` back to the padded square and crop to ``(C, rows, cols)``."""
        top, _, left, _ = self.pad
        out = unturn(image, self.orientation)[None].float()
        if self.square != self.size:
            kwargs = {} if mode in ("area", "nearest", "nearest-exact") else {"align_corners": False}
            out = F.interpolate(out, size=(self.square, self.square), mode=mode, **kwargs)
        return out[0, :, top:top + self.rows, left:left + self.cols]

    def map_to_source(self, array: np.ndarray, mode: str = "bilinear") -> np.ndarray:
        """Numpy convenience: bring a ``size x size`` map back to ``rows x cols``."""
        tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))[None]
        return self.image_to_source(tensor, mode=mode)[0].numpy()


def _reorientation(image: torch.Tensor) -> int:
    """The turn the reader's metadata (:class:`~PilletGANLib.transforms.LoadCXRd`) gives ``image``; 0 without it."""
    if not isinstance(image, MetaTensor) or CXR_META_KEY not in image.meta:
        return 0
    return int(cxr_meta(image).get("reorientation") or 0)


def _ordered(boxes: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes with ``x1 <= x2`` and ``y1 <= y2`` (a flip swaps a box's corners)."""
    xs, ys = np.sort(boxes[:, 0::2], axis=1), np.sort(boxes[:, 1::2], axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


class SquarePadResize(InvertibleTransform, Transform):
    """Pad a channel-first 2D image to a square and resize it to ``size x size``; invertible.

    Args:
        size: network side in pixels (a multiple of 4).
        mode: interpolation for the forward resize (``area`` keeps thin structures honest).
        pad_value: value of the padded border; ``None`` uses the image minimum (dark, like air).
        inverse_mode: interpolation used by :meth:`inverse` to bring maps back.
    """

    def __init__(self, size: int, mode: str = "area", pad_value: float | None = None,
                 inverse_mode: str = "bilinear") -> None:
        if size < 4 or size % 4:
            raise ValueError(f"network size must be a positive multiple of 4, got {size}")
        self.size = int(size)
        self.mode = mode
        self.pad_value = pad_value
        self.inverse_mode = inverse_mode

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=True)
        if img.ndim != 3:
            raise ValueError(f"expected a channel-first 2D image (C, H, W), got shape {tuple(img.shape)}")
        geometry = CXRGeometry(int(img.shape[1]), int(img.shape[2]), self.size, _reorientation(img))
        data = geometry.image_to_network(img.as_tensor() if isinstance(img, MetaTensor) else img,
                                         pad_value=self.pad_value, mode=self.mode)
        out = MetaTensor(data, meta=dict(img.meta)) if isinstance(img, MetaTensor) else data
        if isinstance(img, MetaTensor):
            out.applied_operations = list(img.applied_operations)
            out.meta["cxr_geometry"] = geometry.to_dict()
            self.push_transform(out, orig_size=(geometry.rows, geometry.cols), extra_info=geometry.to_dict())
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        transform = self.pop_transform(data)
        geometry = CXRGeometry(**transform["extra_info"])
        restored = geometry.image_to_source(convert_to_tensor(data, track_meta=False), mode=self.inverse_mode)
        if isinstance(data, MetaTensor):
            out = MetaTensor(restored, meta=dict(data.meta))
            out.applied_operations = list(data.applied_operations)
            out.meta.pop("cxr_geometry", None)
            return out
        return restored


class SquarePadResized(MapTransform, InvertibleTransform):
    """Dictionary version of :class:`SquarePadResize`."""

    def __init__(self, keys: KeysCollection, size: int, mode: str | Sequence[str] = "area",
                 pad_value: float | None = None, inverse_mode: str = "bilinear",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        if len(modes) != len(self.keys):
            raise ValueError(f"got {len(modes)} modes for {len(self.keys)} keys")
        self.transforms = {key: SquarePadResize(size, m, pad_value, inverse_mode)
                           for key, m in zip(self.keys, modes, strict=True)}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transforms[key](d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transforms[key].inverse(d[key])
        return d
