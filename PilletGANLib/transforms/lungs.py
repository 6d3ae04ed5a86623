"""Rule-based lung-field estimate for frontal (PA/AP) chest radiographs.

No learning and no atlas: the lungs are the large dark regions on either side of the bright
mediastinum, inside the central body area. Used to place synthetic opacities and to gate lesion
maps at inference time. The work is done on a copy of at most :data:`WORKING_SIZE` pixels per side
(about 40 ms per 256 px image on a 2-core CPU).
"""

from __future__ import annotations

import numpy as np
from monai.config import NdarrayOrTensor
from monai.utils import convert_to_numpy
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

__all__ = ["WORKING_SIZE", "estimate_lung_mask", "lung_fields_gate", "lung_prior_mask", "widen_lung_fields"]

#: Longest side, in pixels, of the copy the estimate is computed on.
WORKING_SIZE = 128

# Typical lung fields of a frontal radiograph, as fractions of the image (centre row, centre column,
# half height, half width), mirrored for the two sides. Used as a fallback and to score candidates.
_PRIOR_LUNGS = ((0.45, 0.31, 0.35, 0.17), (0.45, 0.69, 0.35, 0.17))
#: Quantiles of the central chest's intensities tried as the lung/soft-tissue threshold.
_THRESHOLD_QUANTILES = np.linspace(0.15, 0.65, 11)
#: A candidate lung may have at most this fraction of its area outside the prior ellipses scaled by
#: ``_GENEROUS_SCALE``.
_MAX_LEAK = 0.25
_GENEROUS_SCALE = 1.3
#: A candidate lung may touch the top or bottom image edge along at most this fraction of the width,
#: and the left or right edge along at most this fraction of the height (outside air touches them widely).
_MAX_CONTACT_TOP_BOTTOM = 0.1
_MAX_CONTACT_SIDES = 0.5
#: A candidate lung must overlap its side's prior ellipse with at least this intersection-over-union.
_MIN_IOU = 0.15


def _as_2d(image: NdarrayOrTensor) -> np.ndarray:
    array = np.nan_to_num(convert_to_numpy(image, dtype=np.float32))
    if array.ndim == 3:
        array = array.mean(axis=0)
    if array.ndim != 2:
        raise ValueError(f"expected an H x W or C x H x W image, got shape {np.shape(image)}")
    return array


def lung_prior_mask(shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Two ellipses at the usual positions of the lungs on a frontal radiograph of ``shape``.

    ``scale`` multiplies the ellipses' half-axes.
    """
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    y, x = (yy + 0.5) / rows, (xx + 0.5) / cols
    mask = np.zeros(shape, dtype=bool)
    for cy, cx, hy, hx in _PRIOR_LUNGS:
        mask |= ((y - cy) / (scale * hy)) ** 2 + ((x - cx) / (scale * hx)) ** 2 <= 1.0
    return mask


def _working_copy(image: np.ndarray) -> np.ndarray:
    """Downsample to at most WORKING_SIZE per side and scale to [0, 1] by robust percentiles."""
    block = max(1, max(image.shape) // WORKING_SIZE)
    if block > 1:
        rows, cols = (image.shape[0] // block) * block, (image.shape[1] // block) * block
        image = image[:rows, :cols].reshape(rows // block, block, cols // block, block).mean(axis=(1, 3))
    factor = WORKING_SIZE / max(image.shape)
    small = ndimage.zoom(image, factor, order=1, prefilter=False) if factor < 1 else image
    low, high = np.percentile(small, (1.0, 99.0))
    if high - low < 1e-6:
        return np.zeros_like(small)
    return np.clip((small - low) / (high - low), 0.0, 1.0)


def _midline_column(smooth: np.ndarray) -> int:
    """Column of the mediastinum: the brightest column band in the central part of the chest."""
    rows, cols = smooth.shape
    profile = smooth[int(0.2 * rows):int(0.7 * rows)].mean(axis=0)
    profile = ndimage.uniform_filter1d(profile, max(3, cols // 20))
    lo, hi = int(0.35 * cols), int(0.65 * cols)
    return lo + int(np.argmax(profile[lo:hi]))


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilation by a disk of ``radius`` pixels (distance transform: cost independent of the radius)."""
    return ndimage.distance_transform_edt(~mask) <= radius


def _erode(mask: np.ndarray, radius: float) -> np.ndarray:
    """Erosion by a disk of ``radius`` pixels; outside the image counts as background."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] > radius


def _convex_fill(mask: np.ndarray) -> np.ndarray:
    """Fill the convex hull of a mask's pixels."""
    points = np.argwhere(mask & ~ndimage.binary_erosion(mask))
    if len(points) < 4:
        return mask
    try:
        facets = ConvexHull(points).equations
    except QhullError:
        return mask
    (r0, c0), (r1, c1) = points.min(axis=0), points.max(axis=0) + 1
    rows, cols = np.mgrid[r0:r1, c0:c1]
    distance = rows[..., None] * facets[:, 0] + cols[..., None] * facets[:, 1] + facets[:, 2]
    filled = mask.copy()
    filled[r0:r1, c0:c1] |= np.all(distance <= 1e-9, axis=-1)
    return filled


def _edge_contact(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """For each label in ``index``, its pixel count on the first or the last row, whichever is larger."""
    counts = [np.bincount(labels[row], minlength=index[-1] + 1)[index] for row in (0, -1)]
    return np.maximum(*counts)


def _best_components(smooth: np.ndarray, midline: int, radius: int) -> list[np.ndarray | None]:
    """Per side, the dark region that best matches that side's prior lung over a sweep of thresholds.

    Each threshold (a quantile of the central chest) gives dark regions, opened with a disk wide
    enough to cut thin bridges to outside air. A region's score is its intersection-over-union with
    its side's prior ellipse, which rejects fragments; regions with much area outside a generous
    lung zone (leaks into outside air or the abdomen) are not candidates. The winner is grown back
    into the dark pixels near it, restoring the corners the opening removed.
    """
    rows, cols = smooth.shape
    centre = smooth[int(0.1 * rows):int(0.9 * rows), int(0.1 * cols):int(0.9 * cols)]
    column = np.arange(cols)[None, :]
    sides = (np.broadcast_to(column < midline, (rows, cols)), np.broadcast_to(column > midline, (rows, cols)))
    prior = lung_prior_mask((rows, cols))
    side_priors = [prior & side for side in sides]
    generous = lung_prior_mask((rows, cols), scale=_GENEROUS_SCALE)
    best: list[np.ndarray | None] = [None, None]
    best_score = [_MIN_IOU, _MIN_IOU]
    for threshold in np.quantile(centre, _THRESHOLD_QUANTILES):
        dark = smooth < threshold
        dark[:, max(0, midline - radius):midline + radius + 1] = False
        labels, count = ndimage.label(_dilate(_erode(dark, 2 * radius), 2 * radius))
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        area = ndimage.sum(np.ones_like(labels), labels, index)
        plausible = ndimage.sum(generous, labels, index) >= (1.0 - _MAX_LEAK) * area
        plausible &= _edge_contact(labels, index) <= _MAX_CONTACT_TOP_BOTTOM * cols
        plausible &= _edge_contact(labels.T, index) <= _MAX_CONTACT_SIDES * rows
        for k, side_prior in enumerate(side_priors):
            inter = ndimage.sum(side_prior, labels, index)
            iou = np.where(plausible, inter / (area + side_prior.sum() - inter), 0.0)
            j = int(np.argmax(iou))
            if iou[j] > best_score[k]:
                best_score[k] = float(iou[j])
                best[k] = dark & sides[k] & _dilate(labels == index[j], 2 * radius)
    return best


def _mirror(mask: np.ndarray, midline: int) -> np.ndarray:
    """Reflect a mask about the column ``midline``."""
    cols = mask.shape[1]
    source = 2 * midline - np.arange(cols)
    valid = (source >= 0) & (source < cols)
    mirrored = np.zeros_like(mask)
    mirrored[:, valid] = mask[:, source[valid]]
    return mirrored


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask to ``shape`` (pixel centres aligned, bilinear then 0.5 threshold)."""
    coords = [(np.arange(n) + 0.5) * m / n - 0.5 for n, m in zip(shape, mask.shape, strict=True)]
    grid = np.meshgrid(*coords, indexing="ij")
    return ndimage.map_coordinates(mask.astype(np.float32), grid, order=1, mode="nearest") > 0.5


def estimate_lung_mask(image: NdarrayOrTensor, hull: bool = False, fallback: bool = True) -> np.ndarray:
    """Estimate the lung fields of a frontal chest radiograph.

    Args:
        image: ``H x W`` or channel-first ``C x H x W`` array or tensor (any intensity range; air
            dark; channels are averaged).
        hull: fill each lung's convex hull, which keeps dense consolidations (bright, so not found
            as "dark") inside the mask; recommended when gating lesion maps.
        fallback: where one lung is not found, use the mirror image of the other; where neither is,
            use the usual lung positions (:func:`lung_prior_mask`). The result is then never empty.

    Returns:
        boolean ``H x W`` mask at the input's resolution.
    """
    array = _as_2d(image)
    norm = _working_copy(array)
    rows, cols = norm.shape
    smooth = ndimage.gaussian_filter(norm, sigma=max(rows, cols) / 80)
    midline = _midline_column(smooth)
    radius = max(1, max(rows, cols) // 64)
    column = np.arange(cols)[None, :]
    sides = (column < midline, column > midline)
    found = []
    for lung, side in zip(_best_components(smooth, midline, radius), sides, strict=True):
        if lung is not None:
            lung = ndimage.binary_fill_holes(_erode(_dilate(lung, 3 * radius), 3 * radius) | lung)
            found.append((_convex_fill(lung) if hull else lung) & side)
    lungs = np.zeros((rows, cols), dtype=bool)
    for lung in found:
        lungs |= lung
    if fallback and len(found) == 1:
        lungs |= _mirror(lungs, midline) & ~lungs
    elif fallback and not found:
        lungs = lung_prior_mask((rows, cols))
    return lungs if lungs.shape == array.shape else _resize_mask(lungs, array.shape)


def lung_fields_gate(image: NdarrayOrTensor, margin: float = 0.0) -> np.ndarray:
    """The lung fields that gate lesion maps and generator edits: each lung's convex hull
    (:func:`estimate_lung_mask` with ``hull=True``), widened by ``margin`` times the longest image side.

    The hull follows the dark lung, so it misses peripheral and basal opacities that are as bright as the
    chest wall; a margin lets them in. Returns a boolean mask at the input's resolution.
    """
    return widen_lung_fields(estimate_lung_mask(image, hull=True), margin)


def widen_lung_fields(lungs: np.ndarray, margin: float) -> np.ndarray:
    """A boolean lung-field mask dilated by ``margin`` times its longest side (``margin`` 0: unchanged)."""
    if margin < 0:
        raise ValueError(f"lung margin must be >= 0, got {margin}")
    radius = margin * max(lungs.shape)
    return _dilate(lungs, radius) if radius > 0 else lungs
