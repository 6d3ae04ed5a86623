"""MONAI dictionary transform that reads chest radiographs with :func:`PilletGANLib.load_cxr`."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..reading import load_cxr

__all__ = ["LoadCXRd", "cxr_meta"]

#: MetaTensor meta key holding the JSON-encoded ``meta`` dict of :func:`load_cxr`.
CXR_META_KEY = "cxr_meta_json"


def cxr_meta(image: MetaTensor) -> dict[str, Any]:
    """Return the :func:`load_cxr` metadata carried by an image loaded with :class:`LoadCXRd`."""
    raw = image.meta[CXR_META_KEY]
    return json.loads(raw if isinstance(raw, str) else raw[0])


class LoadCXRd(MapTransform):
    """Load each key's path into a channel-first ``(1, H, W)`` float32 ``MetaTensor``.

    The reader's metadata travels in ``meta["cxr_meta_json"]`` (a JSON string, so that batches
    collate); ``meta["filename_or_obj"]`` and ``meta["spatial_shape"]`` follow MONAI's conventions.
    Errors are the reader's :class:`PilletGANError` subclasses, naming the file.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image, meta = load_cxr(d[key])
            tensor_meta = {
                "filename_or_obj": meta["source_path"],
                "spatial_shape": np.asarray(image.shape),
                "original_channel_dim": "no_channel",
                CXR_META_KEY: json.dumps(meta),
            }
            d[key] = MetaTensor(torch.from_numpy(np.ascontiguousarray(image))[None], meta=tensor_meta)
        return d
