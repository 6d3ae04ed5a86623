"""Post-processing of the bundle: network output -> lesion map and score -> source-grid heat map and mask -> files.

The chain in ``inference.json``::

    LesionDifferenced  (network grid: the Localizer's lesion map and detection score)
    Invertd            (MONAI: undo the square pad + resize, back to the source grid)
    LesionHeatMaskd    (source grid: the Localizer's heat map in [0, 1] and cleaned binary mask)
    SaveSourceMapd     (one-slice NIfTI/NRRD volumes with the source's pixel spacing)

Both map steps call the model's :class:`~PilletGANLib.localization.Localizer`, as
:class:`~PilletGANLib.inference.Predictor` does, so the bundle's maps are the product's maps as the product makes
them from every pixel (``--full-resolution-decode``; by default the other front doors read an image of 4 times the
network side or more at reduced resolution, :mod:`PilletGANLib.transforms.working_grid`).
"""

from __future__ import annotations

import os
from collections import Counter
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
from ..localization import Localizer, valid_masks
from ..outputs import name_digest, output_stem, whole_name_stem, write_volume
from ..transforms.geometry import CXRGeometry
from ..transforms.io import cxr_meta
from .data import record_failure

__all__ = ["LesionDifferenced", "LesionHeatMaskd", "SaveSourceMapd"]



def _check_single_key(transform: MapTransform) -> None:
    if len(transform.keys) != 1:
        raise ValueError(f"{type(transform).__name__} takes one key, got {transform.keys}")


def _geometry(image: MetaTensor) -> CXRGeometry:
    """The pad + resize geometry :class:`~PilletGANLib.transforms.SquarePadResized` recorded on ``image``."""
    if not isinstance(image, MetaTensor) or "cxr_geometry" not in image.meta:
        raise ValueError("the image carries no 'cxr_geometry' meta: preprocess it with SquarePadResized")
    return CXRGeometry(**{name: int(value) for name, value in image.meta["cxr_geometry"].items()})


class LesionDifferenced(MapTransform):
    """Turn the :class:`~PilletGANLib.networks.HealthyTranslator` output into the lesion map and its score.

    The ``(2, N, N)`` output under the key (healed image, raw difference; ``(4, N, N)`` with the mirrored pass of
    :class:`~PilletGANLib.bundle.LocalizerInferer`) becomes the ``(1, N, N)`` lesion map of
    :meth:`Localizer.lesion_maps <PilletGANLib.localization.Localizer.lesion_maps>` for the network input under
    ``image_key``, gated by its valid area; ``score_key`` receives the detection score.

    Args:
        keys: the network output key, usually ``"pred"`` (one key).
        localizer: the model's localizer (``Localizer.from_card(card, model_path)``).
        image_key: the preprocessed network input, with the geometry meta of ``SquarePadResized``.
        score_key: where the detection score goes (a 0-d float tensor on the CPU).
    """

    def __init__(self, keys: KeysCollection, localizer: Localizer, image_key: str = "image",
                 score_key: str = "score", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        _check_single_key(self)
        self.localizer = localizer
        self.image_key = image_key
        self.score_key = score_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.image_key]
            x = torch.as_tensor(image).as_subclass(torch.Tensor).float()[None]
            output = torch.as_tensor(d[key]).as_subclass(torch.Tensor).float()[None]
            mirrored = output[:, 2:3] if output.shape[1] >= 4 else None  # from LocalizerInferer
            maps = self.localizer.lesion_maps(x, output[:, :1], valid_masks([_geometry(image)]), mirrored)
            d[key] = MetaTensor(maps.maps[0], meta=dict(image.meta))
            d[self.score_key] = maps.scores[0].detach().cpu()
        return d


class LesionHeatMaskd(MapTransform):
    """Source-grid lesion map -> heat map in [0, 1] (in place) and binary mask (under ``mask_key``), with the
    model's calibration (:meth:`Localizer.heat_and_mask <PilletGANLib.localization.Localizer.heat_and_mask>`).

    Args:
        keys: the lesion map key, already inverted to the source grid (one key).
        localizer: the model's localizer.
        mask_key: where the ``(1, rows, cols)`` uint8 mask goes.
    """

    def __init__(self, keys: KeysCollection, localizer: Localizer, mask_key: str = "mask",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        _check_single_key(self)
        self.localizer = localizer
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            difference = d[key]
            meta = dict(difference.meta) if isinstance(difference, MetaTensor) else {}
            heat, mask = self.localizer.heat_and_mask(convert_to_numpy(difference, dtype=np.float32)[0])
            d[key] = MetaTensor(torch.from_numpy(heat)[None], meta=meta)
            d[self.mask_key] = MetaTensor(torch.from_numpy(mask.astype(np.uint8))[None], meta=dict(meta))
        return d


class SaveSourceMapd(MapTransform):
    """Write each key's ``(1, rows, cols)`` source-grid map as ``<stem>_<postfix><ext>`` in ``output_dir``.

    The files are the ones ``pilletgan infer`` writes (:func:`~PilletGANLib.outputs.write_volume`): a
    one-slice volume with x along columns, the source's pixel spacing, written under a temporary name and
    renamed. ``<stem>`` is :meth:`stem_for` the source file (its name without the suffix, or with it when two files
    of one folder share a stem); with
    ``data_root_dir``, the source's folder below it is kept, so equal file names in different folders
    (common in PACS exports) do not overwrite each other.

    Args:
        keys: the maps to write.
        output_dir: destination folder (created when missing).
        output_postfix: file-name postfix per key, e.g. ``"heatmap"`` and ``"mask"``.
        output_ext: ``.nii.gz`` (default), ``.nii`` or ``.nrrd``.
        image_key: the item holding the source's reader metadata (``LoadCXRd``).
        data_root_dir: the input root whose sub-folders are mirrored in ``output_dir`` ("" = flat).
        errors_csv: where an image whose maps cannot be written (a folder or file in the way, a full disk) is listed
            (``file, kind, reason``, appended, as :class:`~PilletGANLib.bundle.ReadableImages` lists unreadable
            files), its maps of this call removed, and the run goes on; None: the error ends the run.
    """

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, output_postfix: str | Sequence[str],
                 output_ext: str = ".nii.gz", image_key: str = "image", data_root_dir: str | os.PathLike = "",
                 errors_csv: str | os.PathLike | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.output_postfix = ensure_tuple_rep(output_postfix, len(self.keys))
        self.output_ext = output_ext
        self.image_key = image_key
        self.data_root_dir = Path(data_root_dir).resolve() if str(data_root_dir) else None
        self.errors_csv = Path(errors_csv) if errors_csv is not None else None
        self._folder_stems: dict[Path, tuple[Counter, Counter]] = {}

    def folder_for(self, source: Path) -> Path:
        """The output folder of ``source``: ``output_dir``, plus its sub-folder below ``data_root_dir``."""
        parent = source.resolve().parent
        if self.data_root_dir is not None and parent.is_relative_to(self.data_root_dir):
            return self.output_dir / parent.relative_to(self.data_root_dir)
        return self.output_dir

    def stem_for(self, source: Path) -> str:
        """:func:`~PilletGANLib.outputs.output_stem` of ``source``, or its whole name
        (:func:`~PilletGANLib.outputs.whole_name_stem`) when another entry of its folder has the same stem (``x.dcm``
        beside its preview ``x.png``): the maps of one would otherwise replace the other's, whichever came last.
        Names that are equal even whole once made safe (``肺.png`` and ``胸.png`` are both ``_.png``) end in 8 hex
        digits of the name's SHA-256."""
        folder = source.parent
        if folder not in self._folder_stems:
            try:
                names = os.listdir(folder)
            except OSError:
                names = [source.name]
            self._folder_stems[folder] = (Counter(output_stem(name) for name in names),
                                          Counter(whole_name_stem(name) for name in names))
        (stems, wholes), stem = self._folder_stems[folder], output_stem(source)
        if stems[stem] <= 1:
            return stem
        whole = whole_name_stem(source)
        return whole if wholes[whole] <= 1 else f"{whole}-{name_digest(source.name)}"

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        meta = cxr_meta(d[self.image_key])
        source = Path(meta["source_path"])
        maps = {postfix: convert_to_numpy(d[key]) for key, postfix in self.key_iterator(d, self.output_postfix)}
        for postfix, array in maps.items():  # a wrong chain, not a file's problem: it ends the run
            if array.ndim != 3 or array.shape[0] != 1:
                raise OutputError(f"the '{postfix}' map has shape {array.shape}; expected (1, rows, cols)", source)
        written: list[Path] = []
        try:
            self._write(maps, meta, source, written)
        except OutputError as err:
            if self.errors_csv is None:
                raise
            for path in written:  # all of an image's maps or none
                path.unlink(missing_ok=True)
            record_failure(self.errors_csv, source, err, what="maps not written")
        return d

    def _write(self, maps: dict[str, np.ndarray], meta: Mapping[str, Any], source: Path, written: list[Path]) -> None:
        """Each map as ``<stem>_<postfix><ext>`` in the source's output folder; ``written`` collects the files."""
        folder = self.folder_for(source)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"the output folder cannot be created ({err.strerror or err})", folder) from err
        stem = self.stem_for(source)
        for postfix, array in maps.items():
            written.append(write_volume(array[0], folder / f"{stem}_{postfix}{self.output_ext}",
                                        meta.get("pixel_spacing"), meta.get("ijk_to_lps")))
