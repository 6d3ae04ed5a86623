"""Floor maps: what a lesion map scores without reading lesions.

Every evaluation report scores three of them with the same code as the model, because opacity boxes
are generous and a map that ignores the image can still point inside one, and dense opacity is bright:

- ``random_map``: a smooth Gaussian random field, different for every image (seeded by its key);
- ``lung_prior``: two fixed Gaussians over the usual lung positions of a frontal radiograph;
- ``grey_level``: the radiograph's own grey levels. It reads the image but knows nothing of lesions: dense
  opacity is bright, so on one-sided opacities its heat mass already leans to the sick side. A map's laterality
  means something only above it.

When the model's results carry its learned location prior (``LesionResult.location_prior``, a model with
``localization.opacity_prior``), that prior alone is scored too, as ``model_prior``: what the map would
reach without the GAN's difference.

Floors have no calibrated threshold, so their mask is the map's top 15 % of pixels (the same mask
``dice_top15`` uses; their ``dice`` equals their ``dice_top15``) and their boxes are that mask's
8-connected components, each scored by the map's maximum inside it. Their detection score is the
map's maximum (``grey_level``: its mean, since every scaled image reaches 1).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..metrics import DICE_TOP_FRACTION, top_fraction_mask

__all__ = ["FLOORS", "MODEL_PRIOR_FLOOR", "FloorPrediction", "floor_prediction", "grey_level_map", "lung_prior_map",
           "prediction_from_map", "random_map"]

#: Names of the floor maps, in report order.
FLOORS = ("random_map", "lung_prior", "grey_level")
#: The floor a model's own learned location prior gives alone (``LesionResult.location_prior``), scored when present.
MODEL_PRIOR_FLOOR = "model_prior"

#: Random field: nodes on the long side of the image; each node is a Gaussian bump one node step wide.
_RANDOM_NODES = 16

# Lung-prior geometry as fractions of the image (columns, rows). Derived once from the 5,038
# lung-field boxes of ../shared/data/siim_covid_256/labels/lung_boxes_dungnb1333.csv (one box around
# both lungs per image): mean box x1 = 0.1402, y1 = 0.0942, x2 = 0.8648, y2 = 0.8114 of the image
# width/height, so width w = 0.7246 and height h = 0.7172. Each lung is one half of that box:
# centres at x1 + w/4 and x1 + 3w/4, both at the box's middle row y1 + h/2; sigma = w/8 across
# (the half-width of a lung is two sigmas) and h/4 down. The patient's right lung is on the image's left.
_LUNG_CENTRES_X = (0.3214, 0.6836)
_LUNG_CENTRE_Y = 0.4528
_LUNG_SIGMA_X = 0.0906
_LUNG_SIGMA_Y = 0.1793


def _gaussian_weights(length: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    """``(length, len(centres))`` Gaussian weights of pixel centres ``i + 0.5`` around ``centres``."""
    position = np.arange(length, dtype=np.float64)[:, None] + 0.5
    return np.exp(-0.5 * ((position - centres[None, :]) / sigma) ** 2)


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth random map: white noise on a coarse grid spread by Gaussian bumps (float32).

    The grid has :data:`_RANDOM_NODES` nodes along the image's long side; each node carries a
    standard normal amplitude and a Gaussian bump whose sigma is one node step, so the map has
    blob-like maxima about 1/16 of the image wide anywhere in the image (white noise would turn
    the top-15 % mask into thousands of single-pixel boxes). The same ``shape`` and ``seed`` always
    give the same map; the maximum varies from map to map, so detection scores are random too.
    """
    rows, cols = int(shape[0]), int(shape[1])
    step = max(rows, cols) / _RANDOM_NODES
    node_rows = np.arange(int(np.ceil(rows / step))) * step + step / 2
    node_cols = np.arange(int(np.ceil(cols / step))) * step + step / 2
    amplitudes = np.random.default_rng(seed).standard_normal((node_rows.size, node_cols.size))
    field = _gaussian_weights(rows, node_rows, step) @ amplitudes @ _gaussian_weights(cols, node_cols, step).T
    return field.astype(np.float32)


@lru_cache(maxsize=8)
def _lung_prior(rows: int, cols: int) -> np.ndarray:
    along_x = _gaussian_weights(cols, np.asarray(_LUNG_CENTRES_X) * cols, _LUNG_SIGMA_X * cols)
    along_y = _gaussian_weights(rows, np.asarray([_LUNG_CENTRE_Y * rows]), _LUNG_SIGMA_Y * rows)
    prior = along_y @ along_x.sum(axis=1, keepdims=True).T
    prior = (prior / prior.max()).astype(np.float32)
    prior.setflags(write=False)
    return prior


def lung_prior_map(shape: tuple[int, int]) -> np.ndarray:
    """Two Gaussians over the usual lung fields of a frontal (PA/AP) radiograph, scaled to max 1 (float32).

    The same for every image of a given shape (read-only; copy it to modify it).
    """
    return _lung_prior(int(shape[0]), int(shape[1]))


def grey_level_map(image: np.ndarray) -> np.ndarray:
    """The image's grey levels (air dark) scaled to [0, 1] between its 0.5th and 99.5th percentiles (float32)."""
    pixels = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(pixels, (0.5, 99.5))
    return np.clip((pixels - low) / max(float(high - low), 1e-6), 0.0, 1.0)


@dataclass
class FloorPrediction:
    """A floor map with what the metrics need: score, top-fraction mask, component boxes and their scores."""

    heatmap: np.ndarray
    score: float
    mask: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray


def prediction_from_map(heatmap: np.ndarray, score: float | None = None) -> FloorPrediction:
    """A map scored as a floor: ``score`` (default: its maximum), its top 15 % as the mask, that mask's components
    as boxes."""
    mask = top_fraction_mask(heatmap, DICE_TOP_FRACTION)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    slices = ndimage.find_objects(labels)
    boxes = np.asarray([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices], dtype=np.float64)
    box_scores = np.asarray(ndimage.maximum(heatmap, labels, np.arange(1, count + 1)), dtype=np.float64)
    return FloorPrediction(heatmap=heatmap, score=float(heatmap.max() if score is None else score), mask=mask,
                           boxes=boxes.reshape(-1, 4), box_scores=box_scores.reshape(-1))


@lru_cache(maxsize=8)
def _lung_prior_prediction(rows: int, cols: int) -> FloorPrediction:
    return prediction_from_map(lung_prior_map((rows, cols)))


def floor_prediction(name: str, shape: tuple[int, int], key: str, image: np.ndarray | None = None) -> FloorPrediction:
    """The floor ``name`` (one of :data:`FLOORS`) for an image of ``shape`` whose key is ``key`` (``grey_level``
    needs the ``image`` itself, in that shape)."""
    if name == "random_map":
        return prediction_from_map(random_map(shape, seed=zlib.crc32(key.encode("utf-8"))))
    if name == "lung_prior":
        return _lung_prior_prediction(int(shape[0]), int(shape[1]))
    if name == "grey_level":
        if image is None or np.shape(image) != tuple(shape):
            raise ValueError(f"the grey_level floor needs the image in the map's shape {tuple(shape)}, got "
                             f"{None if image is None else np.shape(image)}")
        grey = grey_level_map(image)
        return prediction_from_map(grey, score=float(grey.mean()))
    raise ValueError(f"unknown floor '{name}' (known: {FLOORS})")
