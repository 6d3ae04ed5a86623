"""From a radiograph and its healed twin to a lesion heat map, a score, a mask and boxes.

Network-grid steps (batched, torch): difference ``|healed - x|``, Gaussian smoothing, gating by
the valid (unpadded) area, an inner border margin and optionally lung fields, the detection score
(mean of the top-k % of the gated map) and scaling to [0, 1]. Source-grid steps (numpy): the
threshold, small components removed, connected components to scored boxes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from monai.transforms import GaussianSmooth
from scipy import ndimage

from ..errors import ConfigurationError
from ..transforms.geometry import CXRGeometry
from .result import LesionBox

__all__ = ["LUNG_WEIGHTINGS", "LocalizationConfig", "border_gate", "clean_mask", "connected_boxes", "detection_scores",
           "difference_maps", "heat_from_difference", "lesion_maps_and_scores", "localization_gates", "lung_map_weights",
           "mirrored_translation"]


#: How the healed twin and the input become a difference map.
DIFFERENCES = ("absolute", "removed")
#: How the lung gate weights the map (see ``LocalizationConfig.lung_weighting``).
LUNG_WEIGHTINGS = ("none", "interior")


@dataclass
class LocalizationConfig:
    """How a difference map becomes a heat map, score, mask and boxes.

    Attributes:
        difference: ``absolute`` (``|healed - x|``, the design's map) or ``removed`` (``max(x - healed, 0)``:
            only the brightness the healing removed, which is what an opacity is).
        smoothing_sigma: Gaussian sigma in network pixels at 256 px (scaled with the network size).
        border_fraction: width of the image border (fraction of the side) ignored by the map.
        lung_gate: multiply the map by an estimated lung-field mask computed at inference time.
        lung_margin: widen that lung-field mask by this fraction of the image side (0 = each lung's convex
            hull); training with ``edit_region=lungs`` lets the generator edit the same widened fields.
        lung_weighting: with the lung gate, ``none`` (a binary gate) or ``interior`` (the map is also weighted
            by the distance to the lung-field boundary, normalized to 1 at the deepest point, which moves
            its peak off the heart border, the diaphragm and the ribs' edge; the detection score keeps the
            binary gate).
        mirror_average: average the map with the map of the mirrored image (left-right flip), mirrored back: a
            test-time augmentation that costs a second generator pass; the detection score reads the plain map.
        lung_prior: amplitude, in difference units, of the learned lung-field prior added to the gated map (0 =
            none): the two-lung drawing of the lung-field box a ``LungFieldNet`` predicts on the image
            (:mod:`PilletGANLib.inference.lung_fields`), so the map's peak and mask fall inside the lung fields
            where the difference is weak or flat. The detection score reads the difference alone.
        opacity_prior: amplitude of the learned opacity-location prior (0 = none): the template of
            :mod:`PilletGANLib.inference.opacity_prior` drawn through the predicted lung-field box, times this
            amplitude and the image's detection score, is added to the gated map, so the map follows where
            opacities usually lie on images the GAN scores as abnormal and stays faint on the others.
        score_region: ``map`` (the score reads the gated map) or ``image`` (the whole image minus the border,
            so a lung gate shapes the map without hiding evidence from the detection score).
        top_percent: the detection score is the mean of this top percentage of the gated map.
        heat_scale: difference value that maps to heat 1.0 (calibrated on validation images).
        threshold: heat value above which a pixel is lesion (calibrated on healthy validation images).
        min_component_fraction: components smaller than this fraction of the image are dropped.
    """

    difference: str = "absolute"
    smoothing_sigma: float = 2.0
    border_fraction: float = 0.03
    lung_gate: bool = False
    lung_margin: float = 0.0
    lung_weighting: str = "none"
    mirror_average: bool = False
    lung_prior: float = 0.0
    opacity_prior: float = 0.0
    score_region: str = "map"
    top_percent: float = 1.0
    heat_scale: float = 1.0
    threshold: float = 0.5
    min_component_fraction: float = 0.002

    def __post_init__(self) -> None:
        if self.difference not in DIFFERENCES:
            raise ConfigurationError(f"localization difference must be one of {DIFFERENCES}, got '{self.difference}'")
        if self.lung_weighting not in LUNG_WEIGHTINGS:
            raise ConfigurationError(f"localization lung_weighting must be one of {LUNG_WEIGHTINGS}, "
                                     f"got '{self.lung_weighting}'")
        if self.lung_weighting != "none" and not self.lung_gate:
            raise ConfigurationError("localization lung_weighting needs lung_gate=true (it weights the lung fields)")
        if not 0 <= self.lung_margin < 0.5:
            raise ConfigurationError(f"localization lung_margin must be in [0, 0.5), got {self.lung_margin}")
        if self.lung_prior < 0:
            raise ConfigurationError(f"localization lung_prior must be >= 0, got {self.lung_prior}")
        if self.opacity_prior < 0:
            raise ConfigurationError(f"localization opacity_prior must be >= 0, got {self.opacity_prior}")
        if self.score_region not in ("map", "image"):
            raise ConfigurationError(f"localization score_region must be 'map' or 'image', got '{self.score_region}'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> LocalizationConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


def border_gate(size: int, border_fraction: float, geometry: CXRGeometry | None = None) -> torch.Tensor:
    """``size x size`` float gate: 1 inside the image (minus a border margin), 0 on padding and border."""
    gate = torch.ones(size, size)
    if geometry is not None:
        gate *= torch.from_numpy(geometry.valid_mask()).float()
        rows = torch.nonzero(gate.sum(1) > 0).flatten()
        cols = torch.nonzero(gate.sum(0) > 0).flatten()
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    else:
        top, bottom, left, right = 0, size, 0, size
    margin_r = round((bottom - top) * border_fraction)
    margin_c = round((right - left) * border_fraction)
    inner = torch.zeros(size, size)
    inner[top + margin_r: bottom - margin_r, left + margin_c: right - margin_c] = 1
    return gate * inner


def localization_gates(network_image: np.ndarray | torch.Tensor, geometry: CXRGeometry,
                       config: LocalizationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(map gate, score gate)``, each ``N x N``, of one network-grid image.

    The score gate is the valid area minus the border; the map gate is that times the lung fields when
    ``config.lung_gate`` (estimated on the image itself, so it works on any new radiograph, and widened by
    ``config.lung_margin``), weighted by
    :func:`lung_map_weights`. With ``config.score_region == "map"`` the score uses the binary lung gate.
    """
    score_gate = border_gate(geometry.size, config.border_fraction, geometry)
    if not config.lung_gate:
        return score_gate, score_gate
    from ..transforms.lungs import lung_fields_gate

    image = network_image.detach().cpu().numpy() if isinstance(network_image, torch.Tensor) else network_image
    lungs = lung_fields_gate(np.asarray(image, dtype=np.float32).reshape(geometry.size, geometry.size),
                             config.lung_margin)
    lung_gate = score_gate * torch.from_numpy(np.asarray(lungs, dtype=np.float32))
    map_gate = score_gate * lung_map_weights(lungs, config.lung_weighting)
    return map_gate, (lung_gate if config.score_region == "map" else score_gate)


def lung_map_weights(lungs: np.ndarray | torch.Tensor, weighting: str) -> torch.Tensor:
    """``N x N`` float weights of a lung-field mask: the mask itself (``none``) or, for ``interior``, each
    pixel's distance to the mask's boundary (or the image edge) divided by the largest such distance."""
    mask = np.asarray(lungs.cpu() if isinstance(lungs, torch.Tensor) else lungs) > 0
    if weighting == "none":
        return torch.from_numpy(mask.astype(np.float32))
    if weighting != "interior":
        raise ConfigurationError(f"lung weighting must be one of {LUNG_WEIGHTINGS}, got '{weighting}'")
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # the image edge is a boundary too
    return torch.from_numpy((distance / max(float(distance.max()), 1.0)).astype(np.float32))


def lesion_maps_and_scores(images: torch.Tensor, healed: torch.Tensor, config: LocalizationConfig,
                           map_gates: torch.Tensor, score_gates: torch.Tensor,
                           mirrored_healed: torch.Tensor | None = None, lung_priors: torch.Tensor | None = None,
                           opacity_priors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated lesion maps ``(B, 1, N, N)`` and detection scores ``(B,)`` of a batch.

    With ``config.mirror_average``, ``mirrored_healed`` is the healed twin of the mirrored images, mirrored
    back into place (:func:`mirrored_translation`); the map is the mean of the two images' maps. With
    ``config.lung_prior``, ``lung_priors`` ``(B, 1, N, N)`` (``LungFieldEstimator.prior``) times that amplitude is
    added to the gated map; with ``config.opacity_prior``, ``opacity_priors`` ``(B, 1, N, N)``
    (``OpacityPrior.maps``) times that amplitude and each image's score.
    """
    diff = difference_maps(images, healed, config)
    score_gates = score_gates.to(diff.device, diff.dtype)
    scores = detection_scores(diff * score_gates, config.top_percent, score_gates)
    if config.mirror_average:
        if mirrored_healed is None:
            raise ConfigurationError("localization mirror_average needs the healed twin of the mirrored image")
        diff = (diff + difference_maps(images, mirrored_healed.to(diff.device), config)) / 2
    diff = diff * map_gates.to(diff.device, diff.dtype)
    if config.lung_prior > 0:
        if lung_priors is None:
            raise ConfigurationError("localization lung_prior needs the lung-field prior of each image (a lung-field "
                                     "model: the card's 'lung_fields')")
        diff = diff + config.lung_prior * lung_priors.to(diff.device, diff.dtype)
    if config.opacity_prior > 0:
        if opacity_priors is None:
            raise ConfigurationError("localization opacity_prior needs the opacity-location prior of each image (the "
                                     "card's 'opacity_prior' and 'lung_fields' models)")
        weights = config.opacity_prior * scores.to(diff.dtype).clamp_min(0)[:, None, None, None]
        diff = diff + weights * opacity_priors.to(diff.device, diff.dtype)
    return diff, scores


def mirrored_translation(translate: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``translate`` applied to the left-right mirrored ``images``, mirrored back into place."""
    return translate(images.flip(-1)).flip(-1)


def difference_maps(images: torch.Tensor, healed: torch.Tensor, config: LocalizationConfig,
                    gates: torch.Tensor | None = None) -> torch.Tensor:
    """Smoothed, gated difference map (see ``LocalizationConfig.difference``) for a batch ``(B, 1, N, N)``;
    gates broadcast as ``(B, 1, N, N)``."""
    signed = images.float() - healed.float()
    diff = signed.abs() if config.difference == "absolute" else signed.clamp_min(0)
    sigma = config.smoothing_sigma * images.shape[-1] / 256
    if sigma > 0:
        diff = torch.as_tensor(GaussianSmooth(sigma=sigma)(diff[:, 0]))[:, None]  # batch as channels
    if gates is not None:
        diff = diff * gates.to(diff.device, diff.dtype)
    return diff


def detection_scores(diff: torch.Tensor, top_percent: float, gates: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the top ``top_percent`` % of each map's gated pixels, shape ``(B,)``."""
    flat = diff.flatten(1)
    counts = (gates.flatten(1) > 0).sum(1) if gates is not None else torch.full((flat.shape[0],), flat.shape[1])
    scores = []
    for values, count in zip(flat, counts, strict=True):
        k = max(1, round(int(count) * top_percent / 100))
        scores.append(values.topk(k).values.mean())
    return torch.stack(scores)


def heat_from_difference(diff: np.ndarray, heat_scale: float) -> np.ndarray:
    """Scale a difference map to a heat map in [0, 1]."""
    return np.clip(diff / max(heat_scale, 1e-8), 0.0, 1.0).astype(np.float32)


def clean_mask(heatmap: np.ndarray, threshold: float, min_component_fraction: float) -> np.ndarray:
    """``heatmap >= threshold`` without connected components smaller than the given image fraction."""
    mask = heatmap >= threshold
    if not mask.any():
        return mask
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= max(1, int(min_component_fraction * heatmap.size))
    keep[0] = False
    return keep[labels]


def connected_boxes(mask: np.ndarray, heatmap: np.ndarray,
                    pixel_spacing: tuple[float, float] | list[float] | None = None) -> list[LesionBox]:
    """One box per connected component of ``mask``, scored by the component's peak heat, best first."""
    labels, _ = ndimage.label(mask)
    boxes = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        rows, cols = region
        component = labels[region] == index
        peak = float(heatmap[region][component].max())
        y1, y2, x1, x2 = rows.start, rows.stop, cols.start, cols.stop
        mm = None
        if pixel_spacing:
            sr, sc = float(pixel_spacing[0]), float(pixel_spacing[1])
            mm = (x1 * sc, y1 * sr, x2 * sc, y2 * sr)
        boxes.append(LesionBox(float(x1), float(y1), float(x2), float(y2), peak, int(component.sum()), mm))
    return sorted(boxes, key=lambda b: -b.score)
