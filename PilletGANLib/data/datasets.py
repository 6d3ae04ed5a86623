"""Cached MONAI datasets of preprocessed radiographs with their lesion truth at network resolution."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.transforms import Compose, MapTransform

from ..reading import load_cxr
from ..transforms.geometry import CXRGeometry
from ..transforms.lungs import lung_fields_gate
from ..transforms.pipeline import cxr_preprocessing
from .manifest import ManifestRecord

__all__ = ["GeometryFieldd", "LesionTruthd", "LungFieldsd", "build_dataset", "cache_folder", "item_geometry", "record_to_item",
           "training_transforms"]


def record_to_item(record: ManifestRecord) -> dict[str, Any]:
    """The dictionary a dataset item starts from."""
    return {"image": str(record.image), "label": 1 if record.is_disease else 0,
            "boxes": np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4),
            "mask_path": str(record.mask) if record.mask else "", "key": record.key}


class LesionTruthd(MapTransform):
    """Rasterize the lesion truth (a mask file when given, else the boxes) onto the network grid of ``image_key``.

    Writes ``(1, N, N)`` float ``lesion`` (1 inside a box or the mask), ``valid`` (1 where the
    network pixel lies inside the source image, 0 on padding) and ``has_truth`` (bool); removes the
    variable-length ``boxes`` so that items collate.
    """

    def __init__(self, keys: KeysCollection = "lesion", image_key: str = "image") -> None:
        super().__init__(keys)
        self.image_key = image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        geometry = CXRGeometry(**d[self.image_key].meta["cxr_geometry"])
        size = geometry.size
        truth = np.zeros((size, size), dtype=np.float32)
        boxes = np.asarray(d.pop("boxes", np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
        centres = np.arange(size) + 0.5
        for x1, y1, x2, y2 in geometry.boxes_to_network(boxes):
            rows = (centres >= y1) & (centres < y2)
            cols = (centres >= x1) & (centres < x2)
            truth[np.ix_(rows, cols)] = 1.0
        mask_path = d.get("mask_path") or ""
        if mask_path:  # a pixel mask is the exact truth; boxes drawn from it would only blur it
            truth[:] = 0.0
            mask, _ = load_cxr(mask_path)
            if mask.shape != (geometry.rows, geometry.cols):
                from ..errors import DataError

                raise DataError(f"lesion mask of shape {mask.shape} does not match its image "
                                f"({geometry.rows} x {geometry.cols})", mask_path)
            grid = geometry.image_to_network(torch.from_numpy((mask > 0).astype(np.float32))[None], pad_value=0.0)
            truth = np.maximum(truth, (grid[0].numpy() >= 0.5).astype(np.float32))
        for key in self.keys:
            d[key] = torch.from_numpy(truth)[None]
        d["valid"] = torch.from_numpy(geometry.valid_mask().astype(np.float32))[None]
        d["has_truth"] = bool(len(boxes) or mask_path)
        return d


class LungFieldsd(MapTransform):
    """Write ``(1, N, N)`` float ``lung``: the estimated lung fields (convex hull per lung, widened by
    ``margin`` times the side) of ``image_key``.

    The same estimate as the inference-time lung gate; computed once before caching, so that
    ``edit_region="lungs"`` training does not re-estimate it on every iteration.
    """

    def __init__(self, keys: KeysCollection = "lung", image_key: str = "image", margin: float = 0.0) -> None:
        super().__init__(keys)
        self.image_key = image_key
        self.margin = margin

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = torch.as_tensor(d[self.image_key]).as_subclass(torch.Tensor)[0].float().numpy()
        lungs = torch.from_numpy(lung_fields_gate(image, self.margin).astype(np.float32))[None]
        for key in self.keys:
            d[key] = lungs
        return d


class GeometryFieldd(MapTransform):
    """Move the network geometry of ``image`` into an int64 ``geometry`` field ``[rows, cols, size, orientation]`` and
    make ``image`` a plain tensor.

    MONAI's on-disk cache stores no metadata, so without this an item read back from ``cache_dir``
    would be a plain tensor beside freshly computed MetaTensors, and the two do not collate.
    """

    def __init__(self, keys: KeysCollection = "image", geometry_key: str = "geometry") -> None:
        super().__init__(keys)
        self.geometry_key = geometry_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            geometry = CXRGeometry(**d[key].meta["cxr_geometry"])
            d[self.geometry_key] = torch.tensor([geometry.rows, geometry.cols, geometry.size, geometry.orientation],
                                                dtype=torch.int64)
            d[key] = d[key].as_subclass(torch.Tensor)
        return d


def item_geometry(item: Mapping[Hashable, Any], image_key: str = "image") -> CXRGeometry:
    """The :class:`CXRGeometry` of a dataset item: its ``geometry`` field (:class:`GeometryFieldd`), else the
    metadata of its ``image_key`` MetaTensor (pipelines without that step, e.g. the bundle's)."""
    if "geometry" in item:  # rows, cols, size and (cached since the turn existed) the turn
        return CXRGeometry(*(int(v) for v in item["geometry"]))
    return CXRGeometry(**item[image_key].meta["cxr_geometry"])


def training_transforms(image_size: int, margin: float, lung_fields: bool = False, lung_margin: float = 0.0
                        ) -> Compose:
    """Load, normalize, pad + resize, rasterize the truth and, with ``lung_fields``, estimate the lung
    fields (widened by ``lung_margin``): everything before caching. Items hold plain tensors and their
    geometry (:func:`item_geometry`)."""
    transforms = [cxr_preprocessing(image_size, "image", margin), LesionTruthd("lesion", "image")]
    if lung_fields:
        transforms.append(LungFieldsd("lung", "image", lung_margin))
    transforms.append(GeometryFieldd("image", "geometry"))
    # flat: MONAI's caching datasets stop at the first Randomizable transform, and a nested Compose is one
    return Compose(transforms).flatten()


CACHE_FORMAT = 2
"""Version of the cached item layout; a change of :func:`training_transforms` must bump it."""


def cache_folder(cache_dir: str | Path, image_size: int, margin: float, lung_fields: bool,
                 lung_margin: float = 0.0) -> Path:
    """The subfolder of ``cache_dir`` that holds items preprocessed with these settings."""
    lungs = f"_lungs{lung_margin:g}" if lung_fields else ""
    return Path(cache_dir) / f"v{CACHE_FORMAT}_{image_size}px_margin{margin:g}{lungs}"


def build_dataset(records: Sequence[ManifestRecord], image_size: int, margin: float = 1.0,
                  cache: bool = True, cache_dir: str | None = None, num_workers: int = 0,
                  progress: bool = True, lung_fields: bool = False, lung_margin: float = 0.0) -> Dataset:
    """A dataset of preprocessed items: in-memory cache, on-disk cache (``cache_dir``) or none.

    MONAI names a cached file after the item alone, so each preprocessing setting gets its own
    subfolder of ``cache_dir`` (:func:`cache_folder`): one ``cache_dir`` serves runs at any size.
    """
    items = [record_to_item(r) for r in records]
    transform = training_transforms(image_size, margin, lung_fields, lung_margin)
    if cache_dir:
        return PersistentDataset(items, transform=transform,
                                 cache_dir=cache_folder(cache_dir, image_size, margin, lung_fields, lung_margin))
    if cache:
        return CacheDataset(items, transform=transform, num_workers=num_workers or None, progress=progress)
    return Dataset(items, transform=transform)
