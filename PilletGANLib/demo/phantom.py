"""The demo's sample study: a synthetic PA chest radiograph phantom with a known opacity, as a DICOM CR.

Everything here is drawn by the project from simple geometry and seeded noise; no image is copied.
The phantom is built as an attenuation map in soft-tissue units (air 0, full chest thickness about
1): a body outline with shoulders and arms, two lung fields that replace tissue by air (textured by
a branching vessel tree and fine parenchymal noise), the mediastinum and heart, the spine with
vertebrae and the trachea, clavicles, posterior and anterior ribs, diaphragm domes and the abdomen
below them. A pneumonia-like opacity (soft-edged, textured consolidation, drawn with
:func:`PilletGANLib.transforms.insert_synthetic_opacity`) is placed in the lower part of one lung
and its mask kept as ground truth. A CR-like processing step (mild unsharp masking, a tone curve,
quantum and grain noise) turns attenuation into 12-bit MONOCHROME2 pixel values: air darkest,
lungs dark, mediastinum bright, bone brightest.

:mod:`.study` writes it as a DICOM file with its ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..errors import ConfigurationError
from ..transforms.lesions import insert_synthetic_opacity

__all__ = ["BITS_STORED", "DEFAULT_SIZE", "FIELD_OF_VIEW_MM", "PhantomRadiograph", "box_of", "make_phantom_radiograph"]

#: Default phantom size (rows, columns): 0.2 mm pixels over a 41 cm field.
DEFAULT_SIZE = (2048, 2048)
#: The phantom's anatomy spans this many millimetres along its longer side, whatever the pixel count.
FIELD_OF_VIEW_MM = 409.6
#: Bits stored per pixel of the DICOM file (allocated: 16).
BITS_STORED = 12

# Attenuation in soft-tissue units of the structures the phantom is made of.
_LUNG_AIR = 0.7
_HEART_EXTRA = 0.12
_LIVER_EXTRA = 0.06
_GASTRIC_AIR = 0.2
_SPINE = 0.1
_TRACHEA_AIR = 0.16
_CLAVICLE = 0.26
_POSTERIOR_RIB = 0.08
_ANTERIOR_RIB = 0.05
_HUMERUS = 0.35
_VESSEL = 0.2
_PARENCHYMA_TEXTURE = 0.025
_TISSUE_TEXTURE = 0.03
#: Steepness of the tone curve: dense parts (mediastinum, abdomen) are compressed, as on a processed CR.
_TONE = 2.2


class PhantomRadiograph(NamedTuple):
    """``(pixels, opacity_mask, meta)``: the stored values (uint16, ``BITS_STORED`` bits, MONOCHROME2),
    the opacity's boolean mask (all False without an opacity) and a description (see
    :func:`make_phantom_radiograph`)."""

    pixels: np.ndarray
    opacity_mask: np.ndarray
    meta: dict[str, Any]


@dataclass(frozen=True)
class _Grid:
    """Normalized pixel-centre coordinates: ``u`` across (0 = image left = patient's right), ``v`` down."""

    u: np.ndarray
    v: np.ndarray
    rows: int
    cols: int

    @classmethod
    def of(cls, rows: int, cols: int) -> _Grid:
        v = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
        u = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :]
        return cls(u=u, v=v, rows=rows, cols=cols)

    @property
    def scale(self) -> int:
        """Pixels per unit length of the longer side."""
        return max(self.rows, self.cols)

    def pixels(self, points: np.ndarray) -> list[tuple[float, float]]:
        """``(u, v)`` points to ``(x, y)`` pixel coordinates for drawing."""
        return [(float(u * self.cols - 0.5), float(v * self.rows - 0.5)) for u, v in points]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a coarser grid and are interpolated back (same look, far faster)."""
    if sigma <= 0:
        return image.astype(np.float32, copy=False)
    step = max(1, int(sigma // 3))
    if step == 1:
        return ndimage.gaussian_filter(image.astype(np.float32), sigma)
    coarse = ndimage.zoom(image.astype(np.float32), 1.0 / step, order=1)
    coarse = ndimage.gaussian_filter(coarse, sigma / step)
    factors = (image.shape[0] / coarse.shape[0], image.shape[1] / coarse.shape[1])
    return ndimage.zoom(coarse, factors, order=1, grid_mode=True, mode="nearest")[:image.shape[0], :image.shape[1]]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smoothed white noise with zero mean and unit standard deviation."""
    field = _blur(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _tube(grid: _Grid, polylines: list[np.ndarray], half_width: float, cortex: float = 0.35) -> np.ndarray:
    """A bone-like tube along each ``(u, v)`` polyline: thickness of a cylinder of ``half_width`` (a
    fraction of the longer side), with its cortical rim ``cortex`` times denser. Values in [0, ~1.3]."""
    canvas = Image.new("1", (grid.cols, grid.rows), 0)
    draw = ImageDraw.Draw(canvas)
    for line in polylines:
        draw.line(grid.pixels(line), fill=1, width=1)
    centre = np.asarray(canvas, dtype=bool)
    tube = np.zeros(centre.shape, dtype=np.float32)
    rows, cols = np.nonzero(centre)
    if rows.size == 0:
        return tube
    # the tube is zero beyond 1.1 half-widths: the distance transform only needs the lines' padded bounding box
    pad = math.ceil(1.1 * half_width * grid.scale) + 2
    window = (slice(max(0, rows.min() - pad), rows.max() + pad + 1), slice(max(0, cols.min() - pad), cols.max() + pad + 1))
    r = ndimage.distance_transform_edt(~centre[window]).astype(np.float32) / (half_width * grid.scale)
    chord = np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0))
    rim = np.exp(-((r - 0.85) / 0.12) ** 2) * (r < 1.1)
    tube[window] = chord + cortex * rim
    return tube


def _curve(u0: float, v0: float, u1: float, v1: float, bend: float, n: int = 64) -> np.ndarray:
    """A quadratic arc from ``(u0, v0)`` to ``(u1, v1)`` bulging by ``bend`` perpendicular to the chord."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    start, end = np.array([u0, v0]), np.array([u1, v1])
    chord = end - start
    normal = np.array([-chord[1], chord[0]]) / max(float(np.hypot(*chord)), 1e-9)
    return start + t * chord + (4.0 * bend * t * (1.0 - t)) * normal


# -- anatomy ----------------------------------------------------------------------------------------
def _body(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Soft-tissue thickness of the trunk, neck, shoulders and arms, and the body's outline mask."""
    du = np.abs(grid.u - 0.5)
    v = grid.v
    half_width = 0.43 + 0.02 * _smoothstep((v - 0.25) / 0.6)
    shoulder_top = np.where(du < 0.08, -1.0, 0.05 + 0.1 * np.clip((du - 0.08) / 0.34, 0.0, 1.0) ** 1.4)
    trunk = (du < half_width) & (v > shoulder_top)
    thickness = np.where(trunk, np.sqrt(np.clip(1.0 - (du / half_width) ** 2, 0.0, 1.0)) ** 0.25, 0.0)
    neck = (du < 0.08) & (v < 0.2)
    thickness = np.where(neck, np.maximum(thickness, 0.7 * np.sqrt(np.clip(1 - (du / 0.08) ** 2, 0, 1))), thickness)
    # the arms hang beside the trunk from the shoulders, leaving a thin gap of air below the armpits
    arm_centre = 0.47 + 0.04 * np.clip((v - 0.15) / 0.5, 0.0, 1.0)
    arm_half = 0.05
    arm = (np.abs(du - arm_centre) < arm_half) & (v > 0.1 + 0.15 * ((du - 0.42) / 0.08) ** 2)
    arm &= (du > half_width + 0.015 * _smoothstep((v - 0.28) / 0.05)) | (v < 0.28)
    arm_profile = 0.6 * np.sqrt(np.clip(1.0 - ((du - arm_centre) / arm_half) ** 2, 0.0, 1.0)) ** 0.5
    arm_profile = arm_profile * (1.0 - 0.5 * _smoothstep((v - 0.3) / 0.5))
    thickness = np.maximum(thickness, np.where(arm, arm_profile, 0.0))
    outline = thickness > 0
    thickness = thickness * (1.0 + _TISSUE_TEXTURE * _noise(rng, thickness.shape, 0.02 * grid.scale))
    return _blur(thickness.astype(np.float32), max(1.0, 0.002 * grid.scale)), outline


def _heart_border(v: np.ndarray, side: int) -> np.ndarray:
    """Half-width of the mediastinum (heart, aortic knob) on one side, as a function of ``v``."""
    bulge = (0.07 if side < 0 else 0.15) * np.sqrt(np.clip(1.0 - ((v - 0.61) / 0.2) ** 2, 0.0, 1.0))
    knob = 0.04 * np.exp(-(((v - 0.31) / 0.035) ** 2)) if side > 0 else 0.0
    return 0.06 + bulge + knob


def _dome(a: np.ndarray, side: int) -> np.ndarray:
    """Height ``v`` of the diaphragm at distance ``a`` from the midline (the right dome is higher)."""
    return (0.625 if side < 0 else 0.65) + 0.22 * ((a - 0.2) / 0.2) ** 2


def _lungs(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the patient's right (image left) and left lung fields: a rounded apex, a convex
    lateral wall, the heart border medially and the diaphragm dome below."""
    masks = []
    for side in (-1, 1):
        a = (grid.u - 0.5) * side  # distance from the midline towards this side
        centre_v = 0.5
        radius_v = np.where(grid.v < centre_v, 0.385 if side < 0 else 0.395, 0.5)
        outline = ((a - 0.23) / 0.15) ** 2 + ((grid.v - centre_v) / radius_v) ** 2 < 1.0
        masks.append(outline & (a > _heart_border(grid.v, side)) & (grid.v < _dome(a, side)))
    return masks[0], masks[1]


def _mediastinum(grid: _Grid) -> np.ndarray:
    """Mask of the heart and mediastinum between the lungs, above the diaphragm."""
    offset = grid.u - 0.5
    inside = (offset > -_heart_border(grid.v, -1)) & (offset < _heart_border(grid.v, 1))
    return inside & (grid.v > 0.16) & (grid.v < 0.7)


def _heart(grid: _Grid) -> np.ndarray:
    """Extra density of the heart: an ellipse left of the midline, low in the chest (0..1)."""
    du, dv = grid.u - 0.54, grid.v - 0.62
    rot = math.radians(25)
    along = du * math.cos(rot) + dv * math.sin(rot)
    across = -du * math.sin(rot) + dv * math.cos(rot)
    return _smoothstep(1.2 - 1.2 * np.sqrt((along / 0.17) ** 2 + (across / 0.12) ** 2))


def _abdomen(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """The liver below the right dome and the gastric air bubble below the left one (0..1 each)."""
    liver = ((grid.v > _dome(0.5 - grid.u, -1)) & (grid.u < 0.55)).astype(np.float32)
    du, dv = (grid.u - 0.66) / 0.07, (grid.v - _dome(np.float32(0.16), 1) - 0.06) / 0.04
    bubble = _smoothstep(1.0 - np.hypot(du, dv)) * (grid.v > _dome(grid.u - 0.5, 1) + 0.01)
    return liver, bubble


def _spine(grid: _Grid) -> np.ndarray:
    """Vertebral column: bodies separated by disc spaces, pedicles and spinous processes (0..~1.3)."""
    du = grid.u - 0.5
    period = 0.043
    phase = (grid.v % period) / period
    disc = _smoothstep((np.abs(phase - 0.5) - 0.36) / 0.1)
    body = np.sqrt(np.clip(1.0 - (du / 0.034) ** 2, 0.0, 1.0)) * (1.0 - 0.35 * disc)
    centre = (np.floor(grid.v / period) + 0.5) * period
    pedicle = sum(np.exp(-(((du - s * 0.024) / 0.007) ** 2 + ((grid.v - centre + 0.008) / 0.009) ** 2)) for s in (-1, 1))
    spinous = np.exp(-((du / 0.006) ** 2 + ((grid.v - centre - 0.01) / 0.012) ** 2))
    return body + 0.35 * pedicle + 0.25 * spinous


def _trachea(grid: _Grid) -> np.ndarray:
    """Air column of the trachea and the two main bronchi (0..1)."""
    carina = (0.5, 0.355)
    trachea = [np.array([(0.5, -0.05), carina])]
    bronchi = [np.array([carina, (0.41, 0.425)]), np.array([carina, (0.595, 0.44)])]
    return np.clip(_tube(grid, trachea, 0.016, cortex=0.0) + 0.7 * _tube(grid, bronchi, 0.01, cortex=0.0), 0.0, 1.0)


def _clavicles() -> list[np.ndarray]:
    return [_curve(0.5 + s * 0.045, 0.185, 0.5 + s * 0.37, 0.125, bend=-s * 0.012) for s in (-1, 1)]


def _ribs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Centre lines of the posterior ribs (from the spine up and out, arching down to the lateral wall) and
    of the fainter anterior ribs (from the lateral wall down towards the sternum)."""
    t = np.linspace(0.0, 1.0, 64)
    posterior, anterior = [], []
    for k in range(10):
        v0 = 0.14 + 0.053 * k
        reach = min(0.39, 0.22 + 0.045 * k)
        drop = 0.07 + 0.006 * k
        for s in (-1, 1):
            u = 0.5 + s * (0.025 + (reach - 0.025) * t)
            v = v0 - 0.03 * np.sin(np.pi * 0.8 * t) + drop * t**2
            posterior.append(np.stack([u, v], axis=1))
            if 1 <= k <= 6:
                anterior.append(_curve(0.5 + s * reach, float(v[-1]), 0.5 + s * 0.12, v0 + 0.19, bend=-s * 0.025))
    return posterior, anterior


def _humeri(grid: _Grid) -> np.ndarray:
    """Humeral heads and shafts at the upper corners (0..~1.3)."""
    shafts = _tube(grid, [np.array([(0.5 + s * 0.445, 0.17), (0.5 + s * 0.5, 0.42)]) for s in (-1, 1)], 0.02)
    heads = sum(_smoothstep((0.045 - np.hypot((grid.u - 0.5 - s * 0.435) * grid.cols / grid.scale,
                                              (grid.v - 0.165) * grid.rows / grid.scale)) / 0.012) for s in (-1, 1))
    return np.maximum(shafts, heads)


def _vessel_tree(grid: _Grid, rng: np.random.Generator, lungs: np.ndarray) -> np.ndarray:
    """Pulmonary vessels: a branching tree from each hilum; a branch's density follows its calibre, so the
    tree thins and fades towards the periphery."""
    canvas = Image.new("F", (grid.cols, grid.rows), 0.0)
    draw = ImageDraw.Draw(canvas)
    aspect = grid.cols / grid.rows
    root_width = 0.008

    def grow(u: float, v: float, angle: float, length: float, width: float, depth: int) -> None:
        end_u = u + length * math.cos(angle) / aspect
        end_v = v + length * math.sin(angle)
        draw.line(grid.pixels(np.array([(u, v), (end_u, end_v)])), fill=width / root_width,
                  width=max(1, round(width * grid.scale)))
        if depth == 0:
            return
        for turn in (-1, 1):
            grow(end_u, end_v, angle + turn * rng.uniform(0.2, 0.55) + rng.normal(0, 0.08),
                 length * rng.uniform(0.68, 0.82), width * 0.75, depth - 1)

    for side, hilum_u in ((-1, 0.42), (1, 0.58)):
        for base in (-1.0, -0.4, 0.25, 0.8):
            angle = (math.pi if side < 0 else 0.0) - side * base + rng.normal(0, 0.1)
            grow(hilum_u, 0.43 + 0.03 * base, angle, rng.uniform(0.055, 0.07), root_width, 7)
    vessels = _blur(np.asarray(canvas, dtype=np.float32), max(0.8, 0.0015 * grid.scale))
    return vessels * _blur(lungs.astype(np.float32), 0.01 * grid.scale)


# -- image formation --------------------------------------------------------------------------------
def _attenuation(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The phantom without its opacity, in soft-tissue units, and its anatomical masks."""
    thickness, outline = _body(grid, rng)
    right, left = _lungs(grid)
    lungs = right | left
    lung_soft = _blur(lungs.astype(np.float32), 0.004 * grid.scale)
    depth = _blur(lungs.astype(np.float32), 0.035 * grid.scale)
    basal = 1.0 - 0.12 * _smoothstep((grid.v - 0.45) / 0.3)
    attenuation = thickness - _LUNG_AIR * lung_soft * (0.7 + 0.3 * depth) * basal
    liver, bubble = _abdomen(grid)
    attenuation += _HEART_EXTRA * _heart(grid) * (1.0 - lung_soft)
    attenuation += _LIVER_EXTRA * _blur(liver, 0.006 * grid.scale) - _GASTRIC_AIR * bubble
    attenuation += _VESSEL * _vessel_tree(grid, rng, lungs)
    attenuation += _PARENCHYMA_TEXTURE * _noise(rng, (grid.rows, grid.cols), 0.004 * grid.scale) * lung_soft
    attenuation -= _TRACHEA_AIR * _trachea(grid)
    attenuation += _SPINE * _spine(grid)
    clavicles = _tube(grid, _clavicles(), 0.011)
    posterior, anterior = _ribs()
    ribs = _POSTERIOR_RIB * _tube(grid, posterior, 0.0105, cortex=0.5) + _ANTERIOR_RIB * _tube(grid, anterior, 0.009)
    ribs *= 0.3 + 0.7 * _smoothstep((np.abs(grid.u - 0.5) - 0.03) / 0.1)  # hidden by the mediastinum near the spine
    humeri = _humeri(grid)
    attenuation += _CLAVICLE * clavicles + ribs + _HUMERUS * humeri
    attenuation = np.where(outline, attenuation, thickness)
    masks = {"body": outline, "lungs": lungs, "right_lung": right, "left_lung": left,
             "mediastinum": _mediastinum(grid) & ~lungs, "bone": ((clavicles > 0.5) | (humeri > 0.5)) & outline}
    return attenuation.astype(np.float32), masks


def _cr_processing(attenuation: np.ndarray, rng: np.random.Generator, scale: int) -> np.ndarray:
    """What a CR reader's processing makes of the attenuation: mild unsharp masking (equalization), a
    saturating tone curve, quantum noise and fine grain; returns ``BITS_STORED``-bit values (uint16)."""
    enhanced = attenuation + 0.45 * (attenuation - _blur(attenuation, 0.04 * scale))
    signal = 1.0 - np.exp(-_TONE * np.clip(enhanced, 0.0, None))
    signal += 0.008 * rng.standard_normal(signal.shape).astype(np.float32)
    signal += 0.006 * _noise(rng, signal.shape, max(0.6, 0.0008 * scale))
    top = (1 << BITS_STORED) - 1
    values = 0.03 * top + 0.92 * top * signal / (1.0 - math.exp(-_TONE * 1.6))
    return np.clip(np.round(values), 0, top).astype(np.uint16)


def box_of(mask: np.ndarray) -> list[int] | None:
    """``[x1, y1, x2, y2]`` (end exclusive) around a mask's pixels, or ``None`` for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]


def make_phantom_radiograph(size: tuple[int, int] = DEFAULT_SIZE, opacity: bool = True, seed: int = 0
                            ) -> PhantomRadiograph:
    """Draw a synthetic PA chest radiograph, optionally with one pneumonia-like opacity.

    Args:
        size: ``(rows, columns)``, each 128 to 8192; the anatomy fills the frame and the pixel spacing
            is :data:`FIELD_OF_VIEW_MM` over the longer side (0.2 mm at the default 2048).
        opacity: insert the opacity (in the lower part of the lung the seed picks).
        seed: the same seed gives the same pixels, opacity and (in the DICOM file) UIDs.

    Returns:
        ``(pixels, opacity_mask, meta)``: uint16 ``BITS_STORED``-bit MONOCHROME2 values (air dark);
        the opacity mask (bool, all False without an opacity); ``meta`` with ``seed``, ``rows``,
        ``columns``, ``pixel_spacing_mm``, ``bits_stored``, ``photometric_interpretation``,
        ``opacity`` (bool), ``opacity_side`` (the patient's ``"right"`` or ``"left"`` lung, ``None``
        without one), ``opacity_box`` (``[x1, y1, x2, y2]``, end exclusive), ``opacity_area_pixels``
        and ``masks`` (boolean arrays of the drawn anatomy: ``body``, ``lungs``, ``right_lung``,
        ``left_lung``, ``mediastinum``, ``bone``).
    """
    rows, cols = (int(n) for n in size)
    if not (128 <= rows <= 8192 and 128 <= cols <= 8192):
        raise ConfigurationError(f"the phantom's size must be 128 to 8192 pixels per side, not {rows} x {cols}")
    grid = _Grid.of(rows, cols)
    attenuation, masks = _attenuation(grid, np.random.default_rng([seed, 0]))
    opacity_mask = np.zeros((rows, cols), dtype=bool)
    side = None
    if opacity:
        opacity_rng = np.random.default_rng([seed, 1])
        side = ("right", "left")[int(opacity_rng.integers(2))]
        lower_zone = masks[f"{side}_lung"] & (grid.v > 0.36)
        lower_zone = ndimage.distance_transform_edt(lower_zone) > 0.02 * grid.scale
        attenuation, opacity_mask = insert_synthetic_opacity(
            attenuation, opacity_rng, lung_mask=lower_zone, area_range=(0.28, 0.34), density_range=(0.6, 0.7),
            num_blobs=(3, 5), texture=0.4, bronchogram=0.25, softness=0.85, target_percentile_range=(62.0, 68.0))
    pixels = _cr_processing(attenuation, np.random.default_rng([seed, 2]), grid.scale)
    meta = {
        "seed": int(seed),
        "rows": rows,
        "columns": cols,
        "pixel_spacing_mm": FIELD_OF_VIEW_MM / grid.scale,
        "bits_stored": BITS_STORED,
        "photometric_interpretation": "MONOCHROME2",
        "opacity": bool(opacity),
        "opacity_side": side,
        "opacity_box": box_of(opacity_mask),
        "opacity_area_pixels": int(opacity_mask.sum()),
        "masks": masks,
    }
    return PhantomRadiograph(pixels, opacity_mask, meta)
