"""Square padding + resizing to the network grid, with an exact inverse back to the source grid.

A radiograph of ``H x W`` is padded symmetrically to ``S x S`` (``S = max(H, W)``) and resized to
``N x N``. :class:`CXRGeometry` holds that mapping so that maps and boxes predicted at network
resolution land on the same place in the source image; :class:`SquarePadResize` /
:class:`SquarePadResized` apply it as MONAI invertible transforms (``Invertd`` works on them).

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

__all__ = ["CXRGeometry", "SquarePadResize", "SquarePadResized"]


@dataclass(frozen=True)
class CXRGeometry:
    """Mapping between a source image grid (``rows x cols``) and a square network grid (``size``)."""

    rows: int
    cols: int
    size: int

    @property
    def square(self) -> int:
        """Side of the padded square in source pixels."""
        return max(self.rows, self.cols)

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """Padding ``(top, bottom, left, right)`` in source pixels."""
        extra_r, extra_c = self.square - self.rows, self.square - self.cols
        return extra_r // 2, extra_r - extra_r // 2, extra_c // 2, extra_c - extra_c // 2

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
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + np.array([left, top])) * self.scale

    def points_to_source(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` network ``(x, y)`` coordinates back to the source grid."""
        top, _, left, _ = self.pad
        xy = np.asarray(xy, dtype=np.float64)
        return xy / self.scale - np.array([left, top])

    def boxes_to_network(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(n, 4)`` source boxes ``(x1, y1, x2, y2)`` to the network grid."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return self.points_to_network(boxes.reshape(-1, 2, 2)).reshape(-1, 4)

    def boxes_to_source(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map ``(n, 4)`` network boxes ``(x1, y1, x2, y2)`` back to the source grid."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = self.points_to_source(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        if clip:
            out[:, 0::2] = out[:, 0::2].clip(0, self.cols)
            out[:, 1::2] = out[:, 1::2].clip(0, self.rows)
        return out

    # -- images -----------------------------------------------------------------------------
    def valid_mask(self) -> np.ndarray:
        """Boolean ``size x size`` mask of network pixels whose centre lies inside the source image."""
        centres = (np.arange(self.size) + 0.5) / self.scale
        top, _, left, _ = self.pad
        rows_ok = (centres >= top) & (centres < top + self.rows)
        cols_ok = (centres >= left) & (centres < left + self.cols)
        return rows_ok[:, None] & cols_ok[None, :]

    def image_to_network(self, image: torch.Tensor, pad_value: float | None = None, mode: str = "area") -> torch.Tensor:
        """Pad ``(C, rows, cols)`` to the square with ``pad_value`` (default: the image minimum) and resize."""
        top, bottom, left, right = self.pad
        value = float(image.min()) if pad_value is None else pad_value
        square = F.pad(image[None].float(), (left, right, top, bottom), mode="constant", value=value)
        if self.square == self.size:
            return square[0]
        kwargs = {} if mode in ("area", "nearest", "nearest-exact") else {"align_corners": False}
        return F.interpolate(square, size=(self.size, self.size), mode=mode, **kwargs)[0]

    def image_to_source(self, image: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Resize ``(C, size, size)`` back to the padded square and crop to ``(C, rows, cols)``."""
        top, _, left, _ = self.pad
        out = image[None].float()
        if self.square != self.size:
            kwargs = {} if mode in ("area", "nearest", "nearest-exact") else {"align_corners": False}
            out = F.interpolate(out, size=(self.square, self.square), mode=mode, **kwargs)
        return out[0, :, top:top + self.rows, left:left + self.cols]

    def map_to_source(self, array: np.ndarray, mode: str = "bilinear") -> np.ndarray:
        """Numpy convenience: bring a ``size x size`` map back to ``rows x cols``."""
        tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))[None]
        return self.image_to_source(tensor, mode=mode)[0].numpy()


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
        geometry = CXRGeometry(int(img.shape[1]), int(img.shape[2]), self.size)
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
