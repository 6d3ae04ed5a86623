"""Synthetic pneumonia-like opacities inserted into real normal chest radiographs.

This is how the project gets pixel-exact lesion ground truth where no real masks exist: a
consolidation-like opacity (soft-edged, textured, inside the lung fields, of variable size and
density) is painted into a real normal image and its mask is kept. Every figure measured on such
images is semi-synthetic and must be labelled so.

The opacity model: a smooth field (a sum of a few anisotropic Gaussians, its outline roughened by
low-frequency noise) restricted to the lungs; its level set that covers the requested fraction of
the lung area is the mask; a smoothstep around that level gives soft edges (faint parts not
attached to the mask are dropped, so nothing changes away from it). Inside, the density
varies with low-frequency texture and thin darker branching lines (air-bronchogram-like), and
the intensity is pulled toward soft-tissue brightness: ``out = x + density * max(target - x, 0)``,
so the result stays between the input and the target and never leaves the input's range.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from inspect import Parameter, signature
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

from .lungs import estimate_lung_mask

__all__ = ["InsertSyntheticOpacity", "InsertSyntheticOpacityd", "check_opacity_options", "insert_synthetic_opacity"]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with zero mean and unit standard deviation.

    Wide smoothing is done on a coarser grid and interpolated up, which looks the same and is fast.
    """
    step = max(1, int(sigma // 2))
    coarse = (-(-shape[0] // step), -(-shape[1] // step))
    noise = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=max(sigma / step, 0.5))
    if step > 1:
        noise = ndimage.zoom(noise, step, order=1)[:shape[0], :shape[1]]
    return (noise - noise.mean()) / max(float(noise.std()), 1e-12)


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _inverse_smoothstep(value: float) -> float:
    return 0.5 - math.sin(math.asin(1.0 - 2.0 * value) / 3.0)


def _blob_field(rng: np.random.Generator, lung: np.ndarray, area: float, num_blobs: tuple[int, int]) -> np.ndarray:
    """A sum of anisotropic Gaussians around a random point deep inside one lung, roughened by noise."""
    labels, count = ndimage.label(lung)
    sizes = ndimage.sum(lung, labels, np.arange(1, count + 1))
    chosen = labels == 1 + rng.choice(count, p=sizes / sizes.sum())
    depth = ndimage.distance_transform_edt(chosen).ravel()
    centre = np.array(np.unravel_index(rng.choice(depth.size, p=depth / depth.sum()), lung.shape), dtype=np.float64)
    base = math.sqrt(area / math.pi)
    yy, xx = np.mgrid[0:lung.shape[0], 0:lung.shape[1]].astype(np.float64)
    field = np.zeros(lung.shape, dtype=np.float64)
    for _ in range(int(rng.integers(num_blobs[0], num_blobs[1] + 1))):
        cy, cx = centre + rng.normal(0.0, 0.7 * base, size=2)
        sigma_major = base * rng.uniform(0.6, 1.2)
        sigma_minor = sigma_major * rng.uniform(0.35, 1.0)
        angle = rng.uniform(0.0, math.pi)
        along = (yy - cy) * math.cos(angle) + (xx - cx) * math.sin(angle)
        across = -(yy - cy) * math.sin(angle) + (xx - cx) * math.cos(angle)
        field += rng.uniform(0.6, 1.0) * np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))
    return field * np.exp(0.35 * _smooth_noise(rng, lung.shape, 0.35 * base))


def check_opacity_options(options: Mapping[str, Any]) -> None:
    """Refuse, before any image is read, keyword options of :func:`insert_synthetic_opacity` it does not take or
    ranges it cannot draw from (the others keep its defaults).

    Raises:
        ValueError: naming what is wrong.
    """
    defaults = {name: parameter.default for name, parameter in signature(insert_synthetic_opacity).parameters.items()
                if parameter.default is not Parameter.empty and name != "lung_mask"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown opacity options {unknown} (known: {sorted(defaults)})")
    values = {**defaults, **options}
    _check_ranges(values["area_range"], values["density_range"], values["num_blobs"], values["softness"],
                  values["threshold"])


def _check_ranges(area_range: tuple[float, float], density_range: tuple[float, float], num_blobs: tuple[int, int],
                  softness: float, threshold: float) -> None:
    if not (0.0 < area_range[0] <= area_range[1] < 1.0 and 0.0 <= density_range[0] <= density_range[1] <= 1.0
            and 0.0 < softness < 1.0 and 0.0 < threshold < 1.0 and 1 <= num_blobs[0] <= num_blobs[1]):
        raise ValueError("area_range must lie in (0, 1), density_range in [0, 1], softness and threshold in (0, 1), "
                         "num_blobs >= 1 (each range as (low, high)); got area_range "
                         f"{tuple(area_range)}, density_range {tuple(density_range)}, num_blobs {tuple(num_blobs)}, "
                         f"softness {softness}, threshold {threshold}")


def insert_synthetic_opacity(image: np.ndarray, rng: np.random.Generator, lung_mask: np.ndarray | None = None,
                             area_range: tuple[float, float] = (0.03, 0.20), density_range: tuple[float, float] = (0.3, 0.8),
                             num_blobs: tuple[int, int] = (1, 4), texture: float = 0.2, bronchogram: float = 0.15,
                             softness: float = 0.6, threshold: float = 0.5,
                             target_percentile_range: tuple[float, float] = (60.0, 85.0)) -> tuple[np.ndarray, np.ndarray]:
    """Add one pneumonia-like opacity to a normal chest radiograph; deterministic given ``rng``.

    Args:
        image: ``H x W`` or channel-first ``C x H x W`` array, air dark (e.g. normalized to [-1, 1]).
        rng: the random generator; the same seed gives the same opacity.
        lung_mask: boolean ``H x W`` lung fields; estimated with :func:`estimate_lung_mask` when None.
        area_range: the mask's area, as a fraction of the lung area, is drawn uniformly from this range.
        density_range: peak density (0 = invisible, 1 = as bright as the target) drawn from this range.
        num_blobs: the opacity is a sum of this many (inclusive range) anisotropic Gaussians.
        texture: strength of the multiplicative low-frequency texture of the density.
        bronchogram: depth (0..1) of the thin darker branching lines inside the opacity.
        softness: width of the soft edge, relative to the level that bounds the mask (0..1).
        threshold: the returned mask is ``profile > threshold`` (inside the lungs); the area range
            applies to this mask.
        target_percentile_range: the soft-tissue brightness the opacity tends to is this percentile
            (drawn uniformly) of the image's intensities.

    Returns:
        ``(image with the opacity, same shape and dtype; boolean H x W mask)``.
    """
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or C x H x W image, got shape {array.shape}")
    _check_ranges(area_range, density_range, num_blobs, softness, threshold)
    grey = array.astype(np.float64) if array.ndim == 2 else array.astype(np.float64).mean(axis=0)
    lung = estimate_lung_mask(grey) if lung_mask is None else np.asarray(lung_mask, dtype=bool).reshape(grey.shape)
    lung_area = int(lung.sum())
    if lung_area < 4:
        raise ValueError("the lung mask is empty: no place to insert an opacity")
    area = max(1, round(rng.uniform(*area_range) * lung_area))
    field = _blob_field(rng, lung, area, num_blobs)
    field *= ndimage.gaussian_filter(lung.astype(np.float64), sigma=max(1.0, 0.01 * max(lung.shape)))
    level = np.partition(field[lung], lung_area - area)[lung_area - area]
    centre_level = level / (1.0 - softness + 2.0 * softness * _inverse_smoothstep(threshold))
    lower = centre_level * (1.0 - softness)
    mask = lung & (field >= level)
    support, _ = ndimage.label(field > lower)
    attached = np.isin(support, np.unique(support[mask]))
    profile = np.where(attached, _smoothstep((field - lower) / (2.0 * softness * centre_level)), 0.0)

    scale = max(grey.shape)
    density = rng.uniform(*density_range) * profile * (1.0 + texture * _smooth_noise(rng, grey.shape, 0.02 * scale))
    lines = np.exp(-(_smooth_noise(rng, grey.shape, 0.03 * scale) / 0.1) ** 2)
    density = np.clip(density * (1.0 - bronchogram * lines), 0.0, 1.0)
    target = np.percentile(grey, rng.uniform(*target_percentile_range))
    out = array + (density * np.maximum(target - array, 0.0)).astype(array.dtype, copy=False)
    return out.astype(array.dtype, copy=False), mask


class InsertSyntheticOpacity(RandomizableTransform):
    """Array transform: insert a synthetic opacity (see :func:`insert_synthetic_opacity`) with probability ``prob``.

    ``__call__(img, lung_mask=None)`` takes a channel-first image (ndarray or tensor) and returns
    ``(image, mask)``: the mask is a ``1 x H x W`` float (0/1) array or tensor like ``img``, all zero when
    the opacity was not inserted. ``set_random_state`` makes it reproducible.
    """

    def __init__(self, prob: float = 1.0, area_range: tuple[float, float] = (0.03, 0.20),
                 density_range: tuple[float, float] = (0.3, 0.8), num_blobs: tuple[int, int] = (1, 4),
                 texture: float = 0.2, bronchogram: float = 0.15, softness: float = 0.6, threshold: float = 0.5,
                 target_percentile_range: tuple[float, float] = (60.0, 85.0)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.options: dict[str, Any] = {
            "area_range": area_range, "density_range": density_range, "num_blobs": num_blobs, "texture": texture,
            "bronchogram": bronchogram, "softness": softness, "threshold": threshold,
            "target_percentile_range": target_percentile_range,
        }
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, img: NdarrayOrTensor, lung_mask: np.ndarray | None = None,
                 randomize: bool = True) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        if randomize:
            self.randomize()
        array = convert_to_numpy(img)
        if not self._do_transform:
            return img, convert_to_dst_type(np.zeros((1, *array.shape[-2:]), dtype=np.float32), img)[0]
        out, mask = insert_synthetic_opacity(array, np.random.default_rng(self._seed), lung_mask=lung_mask, **self.options)
        return convert_to_dst_type(out, img)[0], convert_to_dst_type(mask[None].astype(np.float32), img)[0]


class InsertSyntheticOpacityd(RandomizableTransform, MapTransform):
    """Dictionary transform: insert a synthetic opacity into ``keys`` (one key) and store its mask under ``mask_key``.

    With probability ``1 - prob`` the image is left unchanged and the mask is all zero. The options
    are those of :func:`insert_synthetic_opacity`; ``lung_key`` names an optional precomputed boolean
    lung mask in the data (estimated from the image otherwise).
    """

    def __init__(self, keys: KeysCollection = "image", mask_key: str = "lesion_mask", prob: float = 1.0,
                 lung_key: str | None = None, allow_missing_keys: bool = False, **options: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if len(self.keys) != 1:
            raise ValueError(f"InsertSyntheticOpacityd takes one image key, got {self.keys}")
        self.mask_key = mask_key
        self.lung_key = lung_key
        self.inserter = InsertSyntheticOpacity(prob=1.0, **options)

    def set_random_state(self, seed: int | None = None,
                         state: np.random.RandomState | None = None) -> InsertSyntheticOpacityd:
        super().set_random_state(seed, state)
        self.inserter.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if not self._do_transform:
                d[self.mask_key] = convert_to_dst_type(np.zeros((1, *d[key].shape[-2:]), dtype=np.float32), d[key])[0]
                continue
            lung = None if self.lung_key is None else convert_to_numpy(d[self.lung_key]).astype(bool).reshape(d[key].shape[-2:])
            self.inserter.randomize()
            d[key], d[self.mask_key] = self.inserter(d[key], lung_mask=lung, randomize=False)
        return d

