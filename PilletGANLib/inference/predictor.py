"""The predictor: radiograph files in, :class:`LesionResult` out, in the source pixel grid."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, PilletGANError
from ..localization import LesionMaps, Localizer, valid_masks
from ..model_store import card_number, load_network, preprocessing_settings
from ..networks import GeneratorEnsemble, HealthyTranslator, PilletGenerator
from ..reading import load_cxr
from ..transforms.pipeline import PreparedImage, prepare_image
from .backends import resolve_backend
from .compiled_backend import CompiledTranslator
from .onnx_backend import OnnxTranslator
from .reading_workers import prepared_batches
from .result import LesionResult

__all__ = ["Predictor", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when available; anything else is passed to ``torch.device``."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device '{device}' was requested but CUDA is not available on this machine")
    return resolved


class Predictor:
    """Runs a model's :class:`~PilletGANLib.networks.HealthyTranslator` and its
    :class:`~PilletGANLib.localization.Localizer` on radiographs.

    Args:
        translator: the healthy translator (weights loaded), or a bare generator or ensemble to wrap.
        card: the model card (``network``, ``preprocessing``, ``localization``, ``calibration``...).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        bf16: run the network under bfloat16 autocast.
        batch_size: images per forward pass.
        num_workers: worker processes that read and preprocess files (:mod:`.reading_workers`).
        reduced_resolution_decode: read DICOM images at least 4 times the network size at reduced resolution
            (:mod:`PilletGANLib.dicom.reduced_resolution`: half from 4 times, a quarter from 8 times; JPEG 2000 up to
            13 times faster to decode, every image 2 to 9 times faster to prepare; lesion maps slightly different);
            ``False`` reads every pixel.
        localizer: the card's localizer (default: :meth:`Localizer.from_card`, which loads the priors the card
            names beside ``card["path"]``).
        backend: what runs the network: ``torch``, ``onnxruntime`` (CPU, float32: the translator exported once,
            in memory, before the first batch (:meth:`warm_up`); the same network, outputs within 1e-4 of
            torch's and 1.1-1.4x faster on an AVX2 CPU), ``inductor`` (``torch.compile`` with frozen weights,
            compiled on the first batch; with ``bf16`` on a CPU that has AVX512-BF16, about 2.2x the eager float32
            reference) or ``auto`` (ONNX Runtime where it applies and is installed, else torch). An export or a
            compilation is a snapshot: a translator whose weights change afterwards needs ``torch``.
    """

    def __init__(self, translator: torch.nn.Module, card: dict[str, Any], device: str | torch.device = "auto",
                 bf16: bool = False, batch_size: int = 8, num_workers: int = 0,
                 localizer: Localizer | None = None, backend: str = "auto", reduced_resolution_decode: bool = True) -> None:
        self.device = resolve_device(device)
        if not isinstance(translator, HealthyTranslator):
            translator = HealthyTranslator(translator, card_number(card, "healthy_index", 0, integer=True, low=0))
        self.translator = translator.to(self.device).eval()
        exportable = isinstance(translator.generator, PilletGenerator | GeneratorEnsemble)
        self.backend = resolve_backend(backend if exportable or backend != "auto" else "torch", self.device, bf16)
        self.card = card
        self.image_size, self.margin = preprocessing_settings(card, 256)
        self.batch_size = max(1, int(batch_size))
        self._network = self._runner(self.translator)
        self.localizer = (localizer or Localizer.from_card(card)).to(self.device)
        self.bf16 = bf16
        self.num_workers = max(0, int(num_workers))
        self.reduced_resolution_decode = reduced_resolution_decode
        self.model_info = {"model_name": card.get("name", "PilletGAN"), "model_sha256": card.get("sha256"),
                           "model_version": card.get("version"), "model_path": card.get("path")}

    @classmethod
    def from_path(cls, path: str | os.PathLike | None = None, **kwargs: Any) -> Predictor:
        """Load a model (``.pt`` + ``.json`` card, checksum checked); ``None`` is the shipped default."""
        translator, card = load_network(path, HealthyTranslator.from_card)
        return cls(translator, card, **kwargs)

    # -- network -------------------------------------------------------------------------------
    @property
    def network(self) -> torch.nn.Module:
        """The healthy translator (generator or ensemble) this predictor runs."""
        return self.translator

    def with_network(self, network: torch.nn.Module) -> Predictor:
        """A predictor with this one's card, settings and localizer running ``network`` (a
        :class:`~PilletGANLib.networks.HealthyTranslator`, or a bare generator to wrap) instead (the evaluation's
        sanity checks run a copy with randomized weights)."""
        if not isinstance(network, HealthyTranslator):
            network = HealthyTranslator(network, card_number(self.card, "healthy_index", 0, integer=True, low=0))
        twin = copy.copy(self)
        twin.translator = network.to(self.device).eval()
        twin._network = twin._runner(twin.translator)
        return twin

    def _runner(self, translator: HealthyTranslator) -> HealthyTranslator | OnnxTranslator | CompiledTranslator:
        """What runs ``translator``: itself, its ONNX Runtime session or its compiled graph."""
        if self.backend == "onnxruntime":
            return OnnxTranslator(translator)
        if self.backend == "inductor":
            return CompiledTranslator(translator, self.batch_size)
        return translator

    def warm_up(self) -> None:
        """Start preparing the network for the first batch now: with ONNX Runtime, its export, in a background thread
        (the batch front door calls this before it looks for files). Nothing to do for torch."""
        if isinstance(self._network, OnnxTranslator):
            self._network.start_export(self.image_size)

    def _autocast(self):
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Healed images ``(B, 1, N, N)`` and attention maps for a batch of network inputs."""
        with self._autocast():
            healed, attention = self._network.heal(images.to(self.device))
        return healed.float(), [a.float() for a in attention]

    # -- results -------------------------------------------------------------------------------
    def network_maps(self, prepared: Sequence[PreparedImage]) -> tuple[torch.Tensor, list[torch.Tensor], LesionMaps]:
        """``(healed, attention, lesion maps)`` at network resolution for one batch."""
        images = torch.stack([p.network_input for p in prepared]).to(self.device)
        healed, attention = self.translate(images)
        mirrored = self.localizer.mirrored_healing(lambda batch: self.translate(batch)[0], images)
        maps = self.localizer.lesion_maps(images, healed, valid_masks([p.geometry for p in prepared]), mirrored)
        return healed, attention, maps

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[LesionResult]:
        """Results for already prepared images (one forward pass per ``batch_size``)."""
        results: list[LesionResult] = []
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start: start + self.batch_size]
            healed, attention, maps = self.network_maps(chunk)
            for index, item in enumerate(chunk):
                result = self._to_source(item, healed[index], maps.maps[index], float(maps.scores[index]),
                                         [a[index] for a in attention])
                if maps.location_priors is not None:
                    result.location_prior = item.geometry.map_to_source(maps.location_priors[index, 0].cpu().numpy())
                results.append(result)
        return results

    def _to_source(self, item: PreparedImage, healed: torch.Tensor, diff: torch.Tensor, score: float,
                   attention: Sequence[torch.Tensor]) -> LesionResult:
        """The result in the source grid: the lesion map resampled once, its heat map, mask and boxes there (the
        image labelled once); the healed twin and attention maps resampled only when read
        (:data:`~PilletGANLib.inference.result.LAZY_FIELDS`)."""
        geometry = item.geometry
        difference = geometry.map_to_source(diff[0].cpu().numpy())
        heatmap, mask, boxes = self.localizer.heat_mask_boxes(difference, item.meta.get("pixel_spacing"))
        healed = healed[0].cpu().numpy()
        attention = [a.cpu() for a in attention]

        def source_attention() -> list[np.ndarray]:
            maps = []
            for att in attention:
                full = torch.nn.functional.interpolate(att[None].float(), size=(self.image_size,) * 2,
                                                       mode="bilinear", align_corners=False)[0, 0]
                maps.append(geometry.map_to_source(full.numpy()).clip(0, 1))
            return maps

        return LesionResult(
            image=item.image,
            healed=lambda: geometry.map_to_source(healed),
            difference=difference,
            heatmap=heatmap,
            score=score,
            calibration=self.localizer.calibration,
            mask=mask,
            boxes=boxes,
            attention=source_attention,
            meta={**item.meta, **self.model_info},
        )

    def predict_array(self, image: np.ndarray, meta: dict[str, Any] | None = None) -> LesionResult:
        """Result for an image already in memory (``H x W``, air dark)."""
        meta = dict(meta or {})
        meta.setdefault("original_shape", list(image.shape))
        return self.predict_prepared([prepare_image(image, meta, self.image_size, self.margin)])[0]

    def predict_path(self, path: str | os.PathLike) -> LesionResult:
        """Read one file and predict; raises the reader's :class:`PilletGANError` for a bad file."""
        image, meta = load_cxr(path, self.image_size if self.reduced_resolution_decode else None)
        return self.predict_array(image, meta)

    def predict_paths(self, paths: Iterable[str | os.PathLike], progress: bool = False, source_images: bool = True
                      ) -> Iterator[tuple[Path, LesionResult | PilletGANError]]:
        """Yield ``(path, result or error)`` in input order; files are read by worker processes.

        ``source_images=False`` leaves each source-grid image in its worker: a result's ``image`` then reads the file
        again when first read (for callers that draw no overlay; saves moving 4-14 MB an image between processes).
        """
        paths = [Path(p) for p in paths]
        self.warm_up()  # overlaps the workers' start and first files
        batches = prepared_batches(paths, self.image_size, self.margin, self.batch_size, self.num_workers,
                                   self.reduced_resolution_decode, source_images)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="image", desc="inference")
        for batch in batches:
            good = [(path, item) for path, item in batch if isinstance(item, PreparedImage)]
            results = iter(self.predict_prepared([item for _, item in good]))
            for path, item in batch:
                yield path, (next(results) if isinstance(item, PreparedImage) else item)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
