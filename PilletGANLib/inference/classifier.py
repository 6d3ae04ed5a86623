"""The classifier baseline's predictor: radiographs in, its Grad-CAM as the lesion map, in the source pixel grid.

The same preprocessing as a PilletGAN model (the card's ``preprocessing``), then the DenseNet of
:mod:`PilletGANLib.networks.classifier`: its opacity probability is the detection score and its Grad-CAM
(``monai.visualize.GradCAM`` at the card's ``cam_layer``, upsampled bilinearly to the network grid, no per-image
normalization) mapped back to the source grid is the map the evaluation ranks. Heat is the Grad-CAM divided by the
card's calibrated ``heat_scale`` and clipped to [0, 1]; the mask is heat above the calibrated ``threshold`` (both
fitted on healthy validation images, as for PilletGAN), boxes its connected components.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.visualize import GradCAM

from ..errors import PilletGANError
from ..model_store import card_number, load_network, preprocessing_settings
from ..networks.classifier import classifier_from_card
from ..postprocess import LesionBox, connected_boxes, heat_from_difference, mask_components
from ..transforms.pipeline import PreparedImage
from .predictor import resolve_device
from .reading_workers import prepared_batches

__all__ = ["ClassifierPredictor", "ClassifierResult", "calibrate_classifier"]


@dataclass
class ClassifierResult:
    """What the classifier baseline says about one radiograph; arrays in the source grid (``rows x cols``).

    Attributes:
        image: the input as read (float32, air dark).
        cam: the Grad-CAM (non-negative, unscaled): the map the evaluation ranks.
        heatmap: ``cam / heat_scale`` clipped to [0, 1].
        score: the classifier's opacity probability.
        threshold: heat above which a pixel is in ``mask``.
        mask: the thresholded heat without small components; ``boxes`` its connected components.
    """

    image: np.ndarray
    cam: np.ndarray
    heatmap: np.ndarray
    score: float
    threshold: float
    mask: np.ndarray
    boxes: list[LesionBox] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def difference(self) -> np.ndarray:
        """The unclipped map, under the name the evaluation reads from a PilletGAN result."""
        return self.cam


class ClassifierPredictor:
    """Runs a classifier baseline and turns its Grad-CAM into results (the interface of
    :class:`~PilletGANLib.inference.Predictor` that the evaluation uses).

    The predictor reads the network's weights when it is made (Grad-CAM runs on a copy); make a new one after
    changing them.

    Args:
        network: the DenseNet (weights loaded).
        card: its model card (``preprocessing``, ``cam_layer``, ``calibration``).
        device, batch_size, num_workers: as for the PilletGAN predictor.
    """

    def __init__(self, network: torch.nn.Module, card: dict[str, Any], device: str | torch.device = "auto",
                 batch_size: int = 8, num_workers: int = 0) -> None:
        self.device = resolve_device(device)
        self.card = card
        self.image_size, self.margin = preprocessing_settings(card, 128)
        self.cam_layer = str(card["cam_layer"])
        self.heat_scale = card_number(card, "heat_scale", 1.0, section="calibration", low=1e-12)
        self.threshold = card_number(card, "threshold", 0.5, section="calibration")
        self.min_component_fraction = card_number(card, "min_component_fraction", 0.002, section="calibration",
                                                  low=0.0, high=1.0)
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self._network = network.to(self.device).eval()
        # Grad-CAM hooks go on a private copy, so that `network` stays a plain module (copies of it carry no hooks)
        self._cam = GradCAM(copy.deepcopy(self._network), target_layers=self.cam_layer, postprocessing=lambda m: m)
        self.model_info = {"model_name": card.get("name", "classifier baseline"), "model_sha256": card.get("sha256"),
                           "model_version": card.get("version"), "model_path": card.get("path"),
                           "model_kind": card.get("kind")}

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kwargs: Any) -> ClassifierPredictor:
        """Load a classifier baseline (``.pt`` + ``.json`` card of kind ``classifier``, checksum checked)."""
        network, card = load_network(path, classifier_from_card)
        return cls(network, card, **kwargs)

    @property
    def network(self) -> torch.nn.Module:
        """The classifier this predictor runs."""
        return self._network

    def with_network(self, network: torch.nn.Module) -> ClassifierPredictor:
        """A predictor with this card and settings running ``network`` instead (the sanity checks' randomized copy)."""
        return ClassifierPredictor(network, self.card, self.device, self.batch_size, self.num_workers)

    def cams_and_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grad-CAM ``(B, 1, N, N)`` at network resolution and opacity probabilities ``(B,)`` of network inputs."""
        images = torch.as_tensor(images).as_subclass(torch.Tensor).float().to(self.device)
        with torch.enable_grad():
            cams = self._cam(images, class_idx=0)
        logits = self._cam.nn_module.score.detach().reshape(-1)  # the class score GradCAM's forward pass kept
        return cams.detach(), torch.sigmoid(logits)

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[ClassifierResult]:
        """Results for already prepared images (one forward and backward pass per ``batch_size``)."""
        results = []
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start: start + self.batch_size]
            cams, scores = self.cams_and_scores(torch.stack([p.network_input for p in chunk]))
            for index, item in enumerate(chunk):
                cam = item.geometry.map_to_source(cams[index, 0].cpu().numpy()).astype(np.float32)
                heatmap = heat_from_difference(cam, self.heat_scale)
                components = mask_components(heatmap, self.threshold, self.min_component_fraction)
                results.append(ClassifierResult(
                    image=item.image, cam=cam, heatmap=heatmap, score=float(scores[index]), threshold=self.threshold,
                    mask=components.mask, boxes=connected_boxes(components, heatmap, item.meta.get("pixel_spacing")),
                    meta={**item.meta, **self.model_info}))
        return results

    def predict_paths(self, paths: Iterable[str | os.PathLike], progress: bool = False
                      ) -> Iterator[tuple[Path, ClassifierResult | PilletGANError]]:
        """Yield ``(path, result or error)`` in input order; files are read by worker processes."""
        from tqdm import tqdm

        paths = [Path(p) for p in paths]
        batches = prepared_batches(paths, self.image_size, self.margin, self.batch_size, self.num_workers)
        with tqdm(total=len(paths), unit="image", desc="inference", disable=not progress) as bar:
            for batch in batches:
                results = iter(self.predict_prepared([item for _, item in batch if isinstance(item, PreparedImage)]))
                for path, item in batch:
                    yield path, (next(results) if isinstance(item, PreparedImage) else item)
                bar.update(len(batch))


def calibrate_classifier(predictor: ClassifierPredictor, healthy: Sequence[PreparedImage], percentile: float = 99.0,
                         scale_percentile: float = 99.9) -> dict[str, float]:
    """Fit ``heat_scale`` (the ``scale_percentile`` of the Grad-CAM over the healthy images' pixels inside the image)
    and ``threshold`` (the ``percentile`` of their heat), as PilletGAN's calibration does; set them on the predictor
    and return them."""
    if not healthy:
        raise ValueError("calibration needs at least one healthy validation image")
    values = []
    for start in range(0, len(healthy), predictor.batch_size):
        chunk = healthy[start: start + predictor.batch_size]
        cams, _ = predictor.cams_and_scores(torch.stack([p.network_input for p in chunk]))
        for item, cam in zip(chunk, cams[:, 0].cpu().numpy(), strict=True):
            values.append(cam[item.geometry.valid_mask()])
    pooled = np.concatenate(values)
    heat_scale = float(max(np.percentile(pooled, scale_percentile), 1e-6))
    threshold = float(np.clip(np.percentile(np.clip(pooled / heat_scale, 0, 1), percentile), 1e-3, 1.0))
    predictor.heat_scale, predictor.threshold = heat_scale, threshold
    return {"heat_scale": heat_scale, "threshold": threshold, "percentile": percentile,
            "scale_percentile": scale_percentile, "min_component_fraction": predictor.min_component_fraction,
            "healthy_images": len(healthy)}
