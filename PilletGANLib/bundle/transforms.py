"""Post-processing of the bundle: network output -> lesion map and score -> source-grid heat map and mask -> files.

The chain in ``inference.json``::

    LesionDifferenced  (network grid: gated, smoothed |healed - x| and the detection score)
    Invertd            (MONAI: undo the square pad + resize, back to the source grid)
    LesionHeatMaskd    (source grid: heat map in [0, 1] and the cleaned binary mask)
    SaveSourceMapd     (one-slice NIfTI/NRRD volumes with the source's pixel spacing)

Every step calls the same functions as :class:`~PilletGANLib.inference.Predictor`, so the bundle's maps
are the product's maps.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy, ensure_tuple_rep

from ..errors import OutputError
from ..inference.lesion_map import (
    LocalizationConfig,
    clean_mask,
    heat_from_difference,
    lesion_maps_and_scores,
    localization_gates,
)
from ..inference.lung_fields import LungFieldEstimator
from ..inference.opacity_prior import OpacityPrior, location_priors
from ..outputs import output_stem, write_volume
from ..transforms.geometry import CXRGeometry
from ..transforms.io import cxr_meta

__all__ = ["LesionDifferenced", "LesionHeatMaskd", "SaveSourceMapd"]


def _localization(value: LocalizationConfig | Mapping[str, Any] | None) -> LocalizationConfig:
    return value if isinstance(value, LocalizationConfig) else LocalizationConfig.from_dict(dict(value or {}))


def _check_single_key(transform: MapTransform) -> None:
    if len(transform.keys) != 1:
        raise ValueError(f"{type(transform).__name__} takes one key, got {transform.keys}")


def _geometry(image: MetaTensor) -> CXRGeometry:
    """The pad + resize geometry :class:`~PilletGANLib.transforms.SquarePadResized` recorded on ``image``."""
    if not isinstance(image, MetaTensor) or "cxr_geometry" not in image.meta:
        raise ValueError("the image carries no 'cxr_geometry' meta: preprocess it with SquarePadResized")
    return CXRGeometry(**{name: int(value) for name, value in image.meta["cxr_geometry"].items()})


class LesionDifferenced(MapTransform):
    """Turn the :class:`~PilletGANLib.bundle.BundleGenerator` output into the gated lesion map and its score.

    The ``(2, N, N)`` output under the key (healed image, raw difference; ``(4, N, N)`` with the mirrored pass of
    :class:`~PilletGANLib.bundle.MirrorAveragingInferer`, whose maps are averaged) becomes the ``(1, N, N)``
    smoothed difference ``|healed - x|`` gated by the valid (unpadded) area minus a border margin, and
    by estimated lung fields when ``localization.lung_gate``; ``score_key`` receives the detection score
    (mean of the top ``top_percent`` % of the gated map). ``x`` is the network input under ``image_key``.

    Args:
        keys: the network output key, usually ``"pred"`` (one key).
        localization: the model card's localization settings (a :class:`LocalizationConfig` or its dict).
        image_key: the preprocessed network input, with the geometry meta of ``SquarePadResized``.
        score_key: where the detection score goes (a 0-d float tensor on the CPU).
        lung_fields: the lung-field model (``.pt`` with its card) that ``localization.lung_prior`` and
            ``opacity_prior`` need.
        opacity_prior: the opacity-location prior (``.pt`` with its card) that ``localization.opacity_prior`` needs.
    """

    def __init__(self, keys: KeysCollection, localization: LocalizationConfig | Mapping[str, Any] | None = None,
                 image_key: str = "image", score_key: str = "score", lung_fields: str | os.PathLike | None = None,
                 opacity_prior: str | os.PathLike | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        _check_single_key(self)
        self.localization = _localization(localization)
        self.image_key = image_key
        self.score_key = score_key
        self.lung_fields = LungFieldEstimator.from_path(lung_fields) if lung_fields is not None else None
        if self.localization.lung_prior > 0 and self.lung_fields is None:
            raise ValueError("localization lung_prior needs the lung-field model: pass lung_fields (the card's "
                             "'lung_fields', beside the model)")
        self.opacity_prior = OpacityPrior.from_path(opacity_prior) if opacity_prior is not None else None
        if self.localization.opacity_prior > 0 and (self.opacity_prior is None or self.lung_fields is None):
            raise ValueError("localization opacity_prior needs the opacity-location prior and the lung-field model: "
                             "pass opacity_prior and lung_fields (the card's 'opacity_prior' and 'lung_fields')")

    def _gates(self, image: MetaTensor) -> tuple[torch.Tensor, torch.Tensor]:
        map_gate, score_gate = localization_gates(convert_to_numpy(image[0], dtype=np.float32), _geometry(image),
                                                  self.localization)
        return map_gate[None, None], score_gate[None, None]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.image_key]
            x = torch.as_tensor(image).as_subclass(torch.Tensor).float()[None]
            output = torch.as_tensor(d[key]).as_subclass(torch.Tensor).float()[None]
            mirrored = output[:, 2:3] if output.shape[1] >= 4 else None  # from MirrorAveragingInferer
            if self.localization.mirror_average and mirrored is None:
                raise ValueError("localization mirror_average needs the mirrored pass: use MirrorAveragingInferer("
                                 "enabled=True) as the bundle's inferer")
            lung_priors, opacity_priors = location_priors(x, self.localization, self.lung_fields, self.opacity_prior)
            difference, scores = lesion_maps_and_scores(x, output[:, :1], self.localization, *self._gates(image),
                                                        mirrored, lung_priors, opacity_priors)
            d[key] = MetaTensor(difference[0], meta=dict(image.meta))
            d[self.score_key] = scores[0].detach().cpu()
        return d


class LesionHeatMaskd(MapTransform):
    """Source-grid lesion map -> heat map in [0, 1] (in place) and binary mask (under ``mask_key``).

    ``heat = clip(difference / heat_scale, 0, 1)``; ``mask = heat >= threshold`` without connected
    components smaller than ``min_component_fraction`` of the image — the model card's calibration.

    Args:
        keys: the lesion map key, already inverted to the source grid (one key).
        localization: the model card's localization settings.
        mask_key: where the ``(1, rows, cols)`` uint8 mask goes.
    """

    def __init__(self, keys: KeysCollection, localization: LocalizationConfig | Mapping[str, Any] | None = None,
                 mask_key: str = "mask", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        _check_single_key(self)
        self.localization = _localization(localization)
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            difference = d[key]
            meta = dict(difference.meta) if isinstance(difference, MetaTensor) else {}
            array = convert_to_numpy(difference, dtype=np.float32)[0]
            heat = heat_from_difference(array, self.localization.heat_scale)
            mask = clean_mask(heat, self.localization.threshold, self.localization.min_component_fraction)
            d[key] = MetaTensor(torch.from_numpy(heat)[None], meta=meta)
            d[self.mask_key] = MetaTensor(torch.from_numpy(mask.astype(np.uint8))[None], meta=dict(meta))
        return d


class SaveSourceMapd(MapTransform):
    """Write each key's ``(1, rows, cols)`` source-grid map as ``<stem>_<postfix><ext>`` in ``output_dir``.

    The files are the ones ``pilletgan infer`` writes (:func:`~PilletGANLib.outputs.write_volume`): a
    one-slice volume with x along columns, the source's pixel spacing, written under a temporary name and
    renamed. ``<stem>`` is :func:`~PilletGANLib.outputs.output_stem` of the source file; with
    ``data_root_dir``, the source's folder below it is kept, so equal file names in different folders
    (common in PACS exports) do not overwrite each other.

    Args:
        keys: the maps to write.
        output_dir: destination folder (created when missing).
        output_postfix: file-name postfix per key, e.g. ``"heatmap"`` and ``"mask"``.
        output_ext: ``.nii.gz`` (default), ``.nii`` or ``.nrrd``.
        image_key: the item holding the source's reader metadata (``LoadCXRd``).
        data_root_dir: the input root whose sub-folders are mirrored in ``output_dir`` ("" = flat).
    """

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, output_postfix: str | Sequence[str],
                 output_ext: str = ".nii.gz", image_key: str = "image", data_root_dir: str | os.PathLike = "",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.output_postfix = ensure_tuple_rep(output_postfix, len(self.keys))
        self.output_ext = output_ext
        self.image_key = image_key
        self.data_root_dir = Path(data_root_dir).resolve() if str(data_root_dir) else None

    def folder_for(self, source: Path) -> Path:
        """The output folder of ``source``: ``output_dir``, plus its sub-folder below ``data_root_dir``."""
        parent = source.resolve().parent
        if self.data_root_dir is not None and parent.is_relative_to(self.data_root_dir):
            return self.output_dir / parent.relative_to(self.data_root_dir)
        return self.output_dir

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        meta = cxr_meta(d[self.image_key])
        source = Path(meta["source_path"])
        folder = self.folder_for(source)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"the output folder cannot be created ({err.strerror or err})", folder) from err
        stem = output_stem(source)
        for key, postfix in self.key_iterator(d, self.output_postfix):
            array = convert_to_numpy(d[key])
            if array.ndim != 3 or array.shape[0] != 1:
                raise OutputError(f"'{key}' has shape {array.shape}; expected (1, rows, cols)", source)
            write_volume(array[0], folder / f"{stem}_{postfix}{self.output_ext}", meta.get("pixel_spacing"))
        return d
