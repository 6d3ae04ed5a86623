"""The predictor: radiograph files in, :class:`LesionResult` out, in the source pixel grid."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ModelError, PilletGANError
from ..model_store import companion_path, load_network
from ..reading import load_cxr
from ..transforms.geometry import CXRGeometry
from ..transforms.pipeline import intensity_normalization
from .lesion_map import (
    LocalizationConfig,
    clean_mask,
    connected_boxes,
    heat_from_difference,
    lesion_maps_and_scores,
    localization_gates,
    mirrored_translation,
)
from .lung_fields import LungFieldEstimator, lung_field_model_path
from .opacity_prior import OpacityPrior, location_priors
from .result import LesionResult

__all__ = ["Predictor", "PreparedImage", "prepare_image", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when available; anything else is passed to ``torch.device``."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device '{device}' was requested but CUDA is not available on this machine")
    return resolved


@dataclass
class PreparedImage:
    """A radiograph read and preprocessed for the network, with what is needed to map back."""

    image: np.ndarray
    meta: dict[str, Any]
    network_input: torch.Tensor
    geometry: CXRGeometry


def prepare_image(image: np.ndarray, meta: dict[str, Any], size: int, margin: float) -> PreparedImage:
    """Normalize to ``[-margin, margin]`` by robust percentiles, pad to square and resize to ``size``."""
    normalize = intensity_normalization("image", margin)
    tensor = normalize({"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]})["image"]
    geometry = CXRGeometry(int(image.shape[0]), int(image.shape[1]), size)
    network_input = geometry.image_to_network(torch.as_tensor(tensor).float(), pad_value=-margin)
    return PreparedImage(image, meta, network_input, geometry)


class _PathDataset(Dataset):
    """Reads and prepares files in DataLoader workers; a failure travels as the error object."""

    def __init__(self, paths: Sequence[Path], size: int, margin: float) -> None:
        self.paths, self.size, self.margin = list(paths), size, margin

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, PreparedImage | PilletGANError]:
        path = self.paths[index]
        try:
            image, meta = load_cxr(path)
            return path, prepare_image(image, meta, self.size, self.margin)
        except PilletGANError as err:
            return path, err


def _keep_list(batch: list) -> list:
    return batch


class Predictor:
    """Runs a PILLET-GAN generator towards the Healthy domain and turns the difference into results.

    Args:
        generator: a ``PilletGenerator`` or ``GeneratorEnsemble`` (weights loaded).
        card: the model card (``network``, ``preprocessing``, ``localization``, ...).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        bf16: run the network under bfloat16 autocast.
        batch_size: images per forward pass.
        num_workers: worker processes that read and preprocess files.
        lung_fields: the lung-field model, needed when the card's ``localization.lung_prior`` or
            ``opacity_prior`` is on.
        opacity_prior: the opacity-location prior, needed when the card's ``localization.opacity_prior`` is on.
    """

    def __init__(self, generator: torch.nn.Module, card: dict[str, Any], device: str | torch.device = "auto",
                 bf16: bool = False, batch_size: int = 8, num_workers: int = 0,
                 lung_fields: LungFieldEstimator | None = None, opacity_prior: OpacityPrior | None = None) -> None:
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval()
        self.card = card
        preprocessing = card.get("preprocessing", {})
        self.image_size = int(preprocessing.get("image_size", 256))
        self.margin = float(preprocessing.get("margin", 1.0))
        self.healthy_index = int(card.get("healthy_index", 0))
        self.localization = LocalizationConfig.from_dict(card.get("localization"))
        if self.localization.lung_prior > 0 and lung_fields is None:
            raise ModelError("the card's localization uses lung_prior but no lung-field model was given (the card's "
                             "'lung_fields' names it)", card.get("path"))
        if self.localization.opacity_prior > 0 and (opacity_prior is None or lung_fields is None):
            raise ModelError("the card's localization uses opacity_prior but the opacity-location prior or the "
                             "lung-field model was not given (the card's 'opacity_prior' and 'lung_fields' name them)",
                             card.get("path"))
        self.lung_fields = lung_fields.to(self.device) if lung_fields is not None else None
        self.opacity_prior = opacity_prior
        self.bf16 = bf16
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self.model_info = {"model_name": card.get("name", "PilletGAN"), "model_sha256": card.get("sha256"),
                           "model_version": card.get("version"), "model_path": card.get("path")}

    @classmethod
    def from_path(cls, path: str | os.PathLike | None = None, **kwargs: Any) -> Predictor:
        """Load a model (``.pt`` + ``.json`` card, checksum checked); ``None`` is the shipped default."""
        from ..networks import generator_from_card

        generator, card = load_network(path, generator_from_card)
        lung_fields_path = lung_field_model_path(card)
        if lung_fields_path is not None:
            kwargs.setdefault("lung_fields", LungFieldEstimator.from_path(lung_fields_path))
        opacity_prior_path = companion_path(card, "opacity_prior")
        if opacity_prior_path is not None:
            kwargs.setdefault("opacity_prior", OpacityPrior.from_path(opacity_prior_path))
        return cls(generator, card, **kwargs)

    # -- network -------------------------------------------------------------------------------
    @property
    def network(self) -> torch.nn.Module:
        """The generator (or ensemble) this predictor runs."""
        return self.generator

    def with_network(self, network: torch.nn.Module) -> Predictor:
        """A predictor with this one's card, settings and auxiliary models running ``network`` instead (the
        evaluation's sanity checks run a copy with randomized weights)."""
        twin = copy.copy(self)
        twin.generator = network.to(self.device).eval()
        return twin

    def _autocast(self):
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Healed images ``(B, 1, N, N)`` and attention maps for a batch of network inputs."""
        images = images.to(self.device)
        target = torch.full((images.shape[0],), self.healthy_index, dtype=torch.long, device=self.device)
        with self._autocast():
            healed, attention = self.generator(images, target)
        return healed.float(), [a.float() for a in attention]

    def gates(self, prepared: Sequence[PreparedImage]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image ``(map gates, score gates)``, each ``(B, 1, N, N)`` (see ``localization_gates``)."""
        pairs = [localization_gates(item.network_input[0], item.geometry, self.localization) for item in prepared]
        return torch.stack([m for m, _ in pairs])[:, None], torch.stack([s for _, s in pairs])[:, None]

    # -- results -------------------------------------------------------------------------------
    def network_maps(self, prepared: Sequence[PreparedImage]
                     ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``(healed, attention, gated difference, scores)`` at network resolution for one batch."""
        return self._network_outputs(prepared)[:4]

    def _network_outputs(self, prepared: Sequence[PreparedImage]) -> tuple[
            torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`network_maps` plus the opacity-location prior (``None`` without one)."""
        images = torch.stack([p.network_input for p in prepared]).to(self.device)
        healed, attention = self.translate(images)
        mirrored = None
        if self.localization.mirror_average:
            mirrored = mirrored_translation(lambda batch: self.translate(batch)[0], images)
        map_gates, score_gates = self.gates(prepared)
        lung_priors, opacity_priors = location_priors(images, self.localization, self.lung_fields, self.opacity_prior)
        diff, scores = lesion_maps_and_scores(images, healed, self.localization, map_gates, score_gates, mirrored,
                                              lung_priors, opacity_priors)
        return healed, attention, diff, scores, opacity_priors

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[LesionResult]:
        """Results for already prepared images (one forward pass per ``batch_size``)."""
        results: list[LesionResult] = []
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start: start + self.batch_size]
            healed, attention, diff, scores, opacity_priors = self._network_outputs(chunk)
            for index, item in enumerate(chunk):
                result = self._to_source(item, healed[index], diff[index], float(scores[index]),
                                         [a[index] for a in attention])
                if opacity_priors is not None:
                    result.location_prior = item.geometry.map_to_source(opacity_priors[index, 0].cpu().numpy())
                results.append(result)
        return results

    def _to_source(self, item: PreparedImage, healed: torch.Tensor, diff: torch.Tensor, score: float,
                   attention: Sequence[torch.Tensor]) -> LesionResult:
        geometry = item.geometry
        difference = geometry.map_to_source(diff[0].cpu().numpy())
        heatmap = heat_from_difference(difference, self.localization.heat_scale)
        mask = clean_mask(heatmap, self.localization.threshold, self.localization.min_component_fraction)
        boxes = connected_boxes(mask, heatmap, item.meta.get("pixel_spacing"))
        attention_maps = []
        for att in attention:
            full = torch.nn.functional.interpolate(att[None].float(), size=(self.image_size,) * 2, mode="bilinear",
                                                   align_corners=False)[0, 0]
            attention_maps.append(geometry.map_to_source(full.cpu().numpy()).clip(0, 1))
        return LesionResult(
            image=item.image,
            healed=geometry.map_to_source(healed[0].cpu().numpy()),
            difference=difference,
            heatmap=heatmap,
            score=score,
            threshold=self.localization.threshold,
            mask=mask,
            boxes=boxes,
            attention=attention_maps,
            meta={**item.meta, **self.model_info},
        )

    def predict_array(self, image: np.ndarray, meta: dict[str, Any] | None = None) -> LesionResult:
        """Result for an image already in memory (``H x W``, air dark)."""
        meta = dict(meta or {})
        meta.setdefault("original_shape", list(image.shape))
        return self.predict_prepared([prepare_image(image, meta, self.image_size, self.margin)])[0]

    def predict_path(self, path: str | os.PathLike) -> LesionResult:
        """Read one file and predict; raises the reader's :class:`PilletGANError` for a bad file."""
        image, meta = load_cxr(path)
        return self.predict_array(image, meta)

    def predict_paths(self, paths: Iterable[str | os.PathLike], progress: bool = False
                      ) -> Iterator[tuple[Path, LesionResult | PilletGANError]]:
        """Yield ``(path, result or error)`` in input order; files are read by worker processes."""
        paths = [Path(p) for p in paths]
        loader = DataLoader(_PathDataset(paths, self.image_size, self.margin), batch_size=self.batch_size,
                            num_workers=self.num_workers, collate_fn=_keep_list)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="image", desc="inference")
        for batch in loader:
            good = [(path, item) for path, item in batch if isinstance(item, PreparedImage)]
            results = iter(self.predict_prepared([item for _, item in good]))
            for path, item in batch:
                yield path, (next(results) if isinstance(item, PreparedImage) else item)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
