"""The header's grey-level transforms of a radiograph, checked: rescale or Modality LUT, then VOI LUT or window.

pydicom applies both (:func:`pydicom.pixels.apply_modality_lut`, :func:`pydicom.pixels.apply_voi_lut`; PS3.3 C.11.1
and C.11.2). This module reads what they need first, so that a broken attribute is named instead of surfacing as a
Python exception, and judges what they made of the image:

- Rescale Slope and Intercept must each be one finite number. One without the other is applied with the other's
  default (slope 1, intercept 0), with a warning; both empty is no rescale, with a warning.
- LUT items are checked against their descriptors (:mod:`~PilletGANLib.dicom.lut_items`).
- A rescale or Modality LUT that leaves the image without contrast, or beyond what float32 holds, refuses it,
  naming the header as the cause.
- A VOI LUT or window that cannot be applied (an undefined VOI LUT Function, a broken LUT), or that leaves the image
  without its grey levels (a window width of 1, one clipping 99 % of the pixels, a LUT of a few entries), is left
  out with a warning: the preprocessing windows every image by its own percentiles, so the image can still be
  analysed. A window over a negative slope keeps the inversion the slope makes (pydicom's output runs backwards).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from ..errors import CorruptFileError, NotAnImageError
from ..text import error_excerpt, header_excerpt
from .header_values import header_number, signed_pixels
from .lut_items import settle_lut_item

__all__ = ["LUT_ERRORS", "MIN_VOI_LEVELS", "ROBUST_PERCENTILES", "apply_modality", "apply_voi", "grey_levels",
           "has_contrast", "inverting_steps", "robust_range"]

#: The robust intensity window of the preprocessing: these percentiles of each image map to the ends of the network's
#: range (:mod:`PilletGANLib.transforms.pipeline`); an image where they are equal has no contrast to analyse.
ROBUST_PERCENTILES = (0.5, 99.5)
#: About this many pixels (a regular subsample) are enough to recognise an image without contrast.
_CONTRAST_SAMPLE = 262_144
#: A VOI output with fewer grey levels than this, and under a quarter of its input's, has lost the image.
MIN_VOI_LEVELS = 64
#: About this many pixels are enough to count grey levels up to :data:`MIN_VOI_LEVELS` times four.
_LEVELS_SAMPLE = 65_536
#: What pydicom raises for a LUT, rescale or window its own validation does not catch (a LUT of 0-bit entries, a VOI
#: LUT Function with several values, a window width below 1; OSError: a LUT sequence whose items cannot be parsed;
#: struct.error: a LUT Descriptor announcing more entries than LUT Data has).
LUT_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, NotImplementedError, OSError, struct.error)
_RESCALE_DEFAULTS = {"RescaleSlope": 1.0, "RescaleIntercept": 0.0}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Relative step float32 resolves (a little above its machine epsilon).
_FLOAT32_RESOLUTION = 1e-6
#: A slope above this can take 32-bit stored values beyond what float32 holds.
_HUGE_SLOPE = _FLOAT32_MAX / 2**32
#: The VOI LUT Functions of a window (PS3.3 C.11.2.1.3).
_WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def _sample(image: np.ndarray, size: int = _CONTRAST_SAMPLE) -> np.ndarray:
    """A regular subsample of about ``size`` pixels."""
    step = max(1, int(math.sqrt(image.size / size)))
    return image[::step, ::step]


def robust_range(image: np.ndarray) -> tuple[float, float]:
    """The image's :data:`ROBUST_PERCENTILES` (on a regular subsample)."""
    low, high = np.percentile(_sample(image), ROBUST_PERCENTILES)
    return float(low), float(high)


def has_contrast(image: np.ndarray) -> bool:
    """Whether the robust percentiles differ (else at least 99 % of the pixels hold one value)."""
    low, high = robust_range(image)
    return high > low


def _settle_rescale(ds: Dataset, path: Path) -> str | None:
    """Check Rescale Slope and Intercept and complete them in the in-memory dataset (never the file) as pydicom must
    apply them: the warning when the header gives one without the other or leaves both empty."""
    numbers = {k: header_number(ds, k, path) for k in _RESCALE_DEFAULTS}
    given = [k for k, number in numbers.items() if number is not None]
    if len(given) == len(_RESCALE_DEFAULTS):
        return None
    empty = [k for k in _RESCALE_DEFAULTS if k in ds and numbers[k] is None]
    for keyword in empty:
        del ds[keyword]
    if not given:
        return "the header's Rescale Slope and Intercept are empty; no rescale applied" if empty else None
    (present,), (missing,) = given, [k for k in _RESCALE_DEFAULTS if k not in given]
    setattr(ds, missing, _RESCALE_DEFAULTS[missing])
    return (f"the header gives {present} {numbers[present]:g} without {missing} (they are required together); "
            f"applied with {missing} {_RESCALE_DEFAULTS[missing]:g}")


def apply_modality(stored: np.ndarray, ds: Dataset, path: Path) -> tuple[np.ndarray, str | None]:
    """``(values, warning)``: the stored values through the header's Modality LUT or rescale (checked first).

    Raises :class:`CorruptFileError` naming a broken attribute, and :class:`NotAnImageError` when the stored values
    have contrast and the rescale or Modality LUT maps at least 99 % of them to one value (a slope of 0, an intercept
    that swamps them, a LUT that is constant where the pixels are).
    """
    try:
        sequence = ds.get("ModalityLUTSequence")
        lut_problem, problem = settle_lut_item(sequence[0], "Modality LUT", signed_pixels(ds), any_depth=False) \
            if sequence else (None, None)
    except LUT_ERRORS as err:
        raise CorruptFileError(f"the header's Modality LUT Sequence cannot be parsed ({error_excerpt(err)})",
                               path) from err
    if lut_problem:
        raise CorruptFileError(f"{lut_problem}; the pixel values cannot be computed", path)
    if not sequence:
        problem = _settle_rescale(ds, path)
    try:
        values = apply_modality_lut(stored, ds)
    except LUT_ERRORS as err:
        raise CorruptFileError(f"the Modality LUT or rescale in the header cannot be applied ({error_excerpt(err)})",
                               path) from err
    if values is stored:  # neither a LUT nor a rescale
        return values, problem
    slope, intercept = (1.0, 0.0) if sequence else (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    if (abs(slope) > _HUGE_SLOPE or abs(intercept) > _FLOAT32_MAX) and (
            max(-float(values.min()), float(values.max())) > _FLOAT32_MAX):
        raise CorruptFileError(f"the header's rescale (slope {slope:g}, intercept {intercept:g}) gives pixel values "
                               f"beyond what 32-bit floating point holds (from {float(values.min()):g} to "
                               f"{float(values.max()):g})", path)
    # only a LUT, a slope of 0 or one float32 cannot resolve beside the intercept can flatten the stored values
    could_flatten = sequence or abs(slope) <= abs(intercept) * _FLOAT32_RESOLUTION
    if could_flatten and not has_contrast(values) and has_contrast(stored):
        how = "Modality LUT Sequence" if sequence else f"rescale (slope {slope:g}, intercept {intercept:g})"
        raise NotAnImageError(f"the header's {how} maps at least 99 % of the pixels to one value "
                              f"({robust_range(values)[0]:g}); the stored pixels have contrast, but the header "
                              "leaves none to analyse", path)
    return values, problem


def _window_reversed(ds: Dataset) -> bool:
    """Whether pydicom's window output decreases with its input: it takes the output range from the stored range
    through the rescale, so a negative slope reverses it (PS3.3 C.11.2.1.2 has it increase)."""
    if ds.get("VOILUTSequence") or ds.get("ModalityLUTSequence"):
        return False
    try:
        return float(ds.RescaleSlope) < 0 and "RescaleIntercept" in ds
    except (AttributeError, TypeError, ValueError):
        return False


def grey_levels(image: np.ndarray) -> int:
    """How many distinct values a regular subsample of about :data:`_LEVELS_SAMPLE` pixels holds."""
    return int(np.unique(_sample(image, _LEVELS_SAMPLE)).size)


def apply_voi(values: np.ndarray, ds: Dataset) -> tuple[np.ndarray, bool, str | None]:
    """``(image, applied, problem)``: the values through the header's first VOI LUT or window. One that cannot be
    applied (a window width of 0, a broken LUT), gives values that are not finite, or leaves the image without its
    grey levels (at least 99 % of the pixels at one value, or fewer than :data:`MIN_VOI_LEVELS` grey levels where
    the input had four times as many) is left out and said in ``problem``."""
    if not any(k in ds for k in ("VOILUTSequence", "WindowCenter")):
        return values, False, None
    try:
        sequence, note = ds.get("VOILUTSequence"), None
        indexed = values
        if sequence:
            lut_problem, note = settle_lut_item(sequence[0], "VOI LUT", signed_pixels(ds), any_depth=True)
            if lut_problem:
                return values, False, f"{lut_problem}; the image is analysed without it"
            if not np.issubdtype(values.dtype, np.integer):
                indexed = np.rint(values).astype(np.int64)  # a VOI LUT is indexed by the (rescaled) integer values
        else:
            function = ds.get("VOILUTFunction", "LINEAR")
            if not isinstance(function, str) or function.strip().upper() not in _WINDOW_FUNCTIONS:
                return values, False, (f"the header's VOILUTFunction {header_excerpt(function)} is not one of "
                                       f"{', '.join(_WINDOW_FUNCTIONS)}; the image is analysed without its window")
        windowed = apply_voi_lut(indexed, ds, index=0)
        reversed_output = _window_reversed(ds)
    except LUT_ERRORS as err:
        return values, False, (f"the header's VOI LUT or window cannot be applied ({error_excerpt(err)}); the image "
                               "is analysed without it")
    if windowed is indexed:  # pydicom found nothing to apply (an empty window centre or sequence)
        return values, False, None
    if reversed_output:
        windowed = -windowed
    low, high = windowed.min(), windowed.max()  # NaN propagates into both
    if not (np.isfinite(low) and np.isfinite(high)):
        return values, False, ("the header's VOI LUT or window gives values that are not finite (e.g. a window "
                               "centre or width of NaN or 1e308); the image is analysed without it")
    sample = _sample(windowed, _LEVELS_SAMPLE)  # enough to judge both, at a quarter of the cost of the contrast check
    if not has_contrast(sample) and has_contrast(values):
        return values, False, ("the header's VOI LUT or window maps at least 99 % of the pixels to one value (a "
                               "window far outside the pixel values, or too narrow); the image is analysed without it")
    levels_out = grey_levels(sample)
    levels_in = grey_levels(values) if levels_out < MIN_VOI_LEVELS else 0
    if levels_out < min(MIN_VOI_LEVELS, levels_in // 4):
        return values, False, (f"the header's VOI LUT or window leaves {levels_out} grey levels of the image's "
                               f"{levels_in} (a window width of 1, a LUT of a few entries); the image is analysed "
                               "without it")
    return windowed, True, note


def inverting_steps(ds: Dataset, voi_applied: bool) -> list[str]:
    """The header's grey-level steps applied to the image that can invert it (a LUT runs either way; a rescale with a
    negative slope), for the polarity warning."""
    steps = []
    try:
        if ds.get("ModalityLUTSequence"):
            steps.append("Modality LUT")
        elif float(ds.get("RescaleSlope", 1.0)) < 0:
            steps.append("negative Rescale Slope")
        if voi_applied and ds.get("VOILUTSequence"):
            steps.append("VOI LUT")
    except LUT_ERRORS:  # an attribute pydicom could not parse was not applied either
        pass
    return steps
