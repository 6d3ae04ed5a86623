"""Does a radiograph, read as its header says, look like a radiograph or like its photographic negative?

A header can lie about its photometric interpretation: an export that inverted the pixels of a MONOCHROME1
image but kept the label (or labelled MONOCHROME2 pixels MONOCHROME1) makes the reader show a negative, with
bones dark and lungs bright, and every map computed from it is meaningless. :func:`polarity_logit` scores an
image read the header's way with a linear template over a 16 x 16 thumbnail of its robustly normalized
intensities: positive for a chest radiograph with air dark, negative for its negative.
:func:`polarity_warning` turns a clearly negative score into a warning naming the header's value.
:func:`settle_presentation_shape` lets the score decide when the header contradicts itself: a Presentation LUT
Shape (INVERSE exactly for MONOCHROME1 in the DX, MG and IO image modules) that disagrees with the Photometric
Interpretation.

The template (:data:`TEMPLATE`) is a logistic regression fitted by :func:`fit_polarity_template` on the SIIM-FISABIO-
RSNA COVID-19 training folds 0-2 (3,753 radiographs at 256 px; each with its mirror image and two random crops
of 80-100 %, against their negatives). ``benchmarks/bench_polarity.py`` refits it and measures it on data kept
aside; the figures are in ``docs/batch.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["TEMPLATE", "THUMBNAIL", "WARN_BELOW", "fit_polarity_template", "polarity_logit", "polarity_warning",
           "settle_presentation_shape", "thumbnail"]

#: Side of the thumbnail the template reads.
THUMBNAIL = 16
#: Images are subsampled to about this many pixels per side before the thumbnail is made.
_READ_SIDE = 512
#: A logit below this means the image looks like a negative (the fitted decision boundary is 0; the margin keeps
#: ambiguous images, such as unusual crops, from raising false alarms).
WARN_BELOW = -2.0

#: Template weights of :func:`polarity_logit`, row by row over the 16 x 16 thumbnail (top row first), rounded to two
#: decimals, and its bias (0: the fit is symmetric). Bright is expected down the middle (spine, mediastinum, and
#: the abdomen at the bottom), dark over the lungs and in the corners (air). ``bench_polarity.py --fit`` refits it.
TEMPLATE = np.array([
    [-0.55, -0.35, -0.23, -0.18, -0.14, -0.05, 0.07, 0.17, 0.18, 0.08, -0.05, -0.13, -0.20, -0.26, -0.43, -0.55],
    [-0.42, -0.15, -0.04, -0.03, -0.04, 0.03, 0.08, 0.13, 0.15, 0.10, 0.01, -0.03, -0.02, -0.07, -0.24, -0.40],
    [-0.24, -0.01, 0.06, 0.01, -0.05, -0.01, 0.02, 0.07, 0.09, 0.02, -0.04, -0.03, 0.07, 0.08, -0.03, -0.20],
    [-0.13, 0.03, 0.05, -0.03, -0.13, -0.10, -0.04, 0.06, 0.10, -0.01, -0.12, -0.12, 0.01, 0.08, 0.02, -0.09],
    [-0.04, 0.04, 0.03, -0.09, -0.18, -0.15, -0.03, 0.08, 0.11, 0.01, -0.12, -0.15, -0.04, 0.06, 0.04, -0.02],
    [0.00, 0.05, 0.00, -0.11, -0.20, -0.19, -0.05, 0.11, 0.14, 0.04, -0.09, -0.12, -0.03, 0.05, 0.04, 0.02],
    [-0.02, 0.02, -0.03, -0.13, -0.21, -0.16, -0.01, 0.14, 0.18, 0.09, -0.02, -0.08, -0.01, 0.05, 0.03, 0.02],
    [-0.07, -0.01, -0.02, -0.11, -0.15, -0.06, 0.09, 0.24, 0.27, 0.19, 0.06, -0.02, -0.01, 0.06, 0.02, -0.01],
    [-0.10, -0.01, 0.01, -0.04, -0.03, 0.07, 0.25, 0.39, 0.41, 0.34, 0.19, 0.08, 0.03, 0.08, 0.00, -0.06],
    [-0.14, -0.04, -0.01, -0.01, 0.01, 0.12, 0.28, 0.41, 0.43, 0.35, 0.20, 0.08, 0.03, 0.04, -0.02, -0.10],
    [-0.18, -0.04, 0.01, 0.02, 0.05, 0.16, 0.32, 0.44, 0.47, 0.37, 0.24, 0.10, 0.05, 0.04, -0.01, -0.12],
    [-0.31, -0.14, -0.07, -0.06, 0.01, 0.14, 0.30, 0.41, 0.43, 0.34, 0.20, 0.05, -0.01, -0.03, -0.10, -0.23],
    [-0.38, -0.19, -0.10, -0.04, 0.04, 0.15, 0.30, 0.40, 0.42, 0.33, 0.20, 0.05, -0.03, -0.07, -0.16, -0.33],
    [-0.40, -0.18, -0.07, 0.02, 0.11, 0.20, 0.33, 0.44, 0.46, 0.37, 0.25, 0.09, 0.02, -0.07, -0.18, -0.38],
    [-0.40, -0.18, -0.03, 0.11, 0.19, 0.28, 0.38, 0.47, 0.49, 0.41, 0.30, 0.17, 0.08, -0.03, -0.20, -0.41],
    [-0.41, -0.18, -0.03, 0.12, 0.24, 0.31, 0.37, 0.45, 0.45, 0.37, 0.28, 0.19, 0.10, -0.03, -0.23, -0.44],
], dtype=np.float32)
BIAS = 0.0


def thumbnail(image: np.ndarray) -> np.ndarray:
    """``THUMBNAIL x THUMBNAIL`` box-averaged copy of ``image`` scaled by its 1st and 99th percentiles to [0, 1]."""
    from PIL import Image

    pixels = np.asarray(image)
    stride = max(1, max(pixels.shape) // _READ_SIDE)
    # the statistics of a 16 x 16 thumbnail do not need every pixel; scaled by the span itself, not a fixed floor: a
    # rescale slope of 1e-30 leaves values and span tiny, not the image flat (float64 input stays float64)
    pixels = pixels[::stride, ::stride].astype(np.result_type(pixels.dtype, np.float32))
    finite = pixels[np.isfinite(pixels)]
    low, high = np.percentile(finite, (1, 99)) if finite.size else (0.0, 0.0)
    if not high > low:  # nothing to read: the neutral thumbnail, whose score is the bias (undecided)
        return np.full((THUMBNAIL, THUMBNAIL), 0.5, dtype=np.float32)
    scaled = np.clip((np.nan_to_num(pixels, nan=low) - low) / (high - low), 0.0, 1.0)
    small = Image.fromarray(scaled.astype(np.float32)).resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


def polarity_logit(image: np.ndarray, template: np.ndarray | None = None, bias: float | None = None) -> float:
    """Log-odds that ``image`` (as read: the header's polarity applied) shows air dark and bone bright."""
    weights = TEMPLATE if template is None else np.asarray(template, dtype=np.float32)
    offset = BIAS if bias is None else float(bias)
    return float(np.sum((thumbnail(image) - 0.5) * weights) + offset)


def polarity_warning(image: np.ndarray, photometric: str | None, transforms: Sequence[str] = ()) -> str | None:
    """A warning when the pixels, read as the header says, look like a negative, else ``None``; ``transforms`` names
    the header's steps that could have inverted them besides ``photometric`` (e.g. ``"Modality LUT"``)."""
    logit = polarity_logit(image)
    if logit >= WARN_BELOW:
        return None
    label = (photometric or "no photometric interpretation").strip()
    suspects = " or ".join(["photometric interpretation", *transforms])
    return (f"the pixels look like a photographic negative (polarity score {logit:.1f}) although the header says "
            f"{label}: the header's {suspects} is probably wrong; analysed as the header says, so the map is not to "
            "be trusted")


def settle_presentation_shape(image: np.ndarray, photometric: str, shape: object) -> tuple[bool, str | None]:
    """Whether to invert ``image`` (read as ``photometric`` says) because its Presentation LUT Shape ``shape``
    says so, and the warning to report, when the two attributes disagree about inversion.

    The DX, MG and IO image modules pair MONOCHROME2 with IDENTITY and MONOCHROME1 with INVERSE; some exports get
    one of the two wrong (known for CR, where archives offer to ignore the shape), so the image decides: the
    Presentation LUT Shape is followed only when the Photometric Interpretation's reading looks like a negative
    (:func:`polarity_logit` below :data:`WARN_BELOW`; the inverted reading then scores above ``-WARN_BELOW``).
    Either way a warning names both attributes and the one followed. No shape, or one that agrees: ``(False,
    None)``; a value other than IDENTITY or INVERSE is ignored with a warning.
    """
    if shape is None or shape == "":
        return False, None
    value = str(shape).strip().upper()
    if value not in ("IDENTITY", "INVERSE"):
        return False, f"Presentation LUT Shape {str(shape)[:32]!r} is neither IDENTITY nor INVERSE; ignored"
    if (value == "INVERSE") == (photometric == "MONOCHROME1"):
        return False, None
    logit = polarity_logit(image)
    disagreement = f"the header's Photometric Interpretation {photometric} and Presentation LUT Shape {value} disagree"
    if logit < WARN_BELOW:
        return True, (f"{disagreement}; read as {photometric} the pixels look like a photographic negative (polarity "
                      f"score {logit:.1f}), so Presentation LUT Shape {value} was followed and the image inverted")
    return False, (f"{disagreement}; the pixels look like a radiograph as {photometric} says (polarity score "
                   f"{logit:.1f}), so Presentation LUT Shape {value} was ignored")


def fit_polarity_template(images: Iterable[np.ndarray], crops: int = 2, seed: int = 0, iterations: int = 25,
                          l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Fit :data:`TEMPLATE` and its bias: logistic regression of radiographs (air dark) against their negatives.

    Each image contributes itself, its mirror image and ``crops`` random crops of 80-100 % of each side; the
    negatives are the same thumbnails inverted. Fitted by Newton's method with an L2 penalty ``l2``.
    """
    rng = np.random.default_rng(seed)
    thumbs = []
    for image in images:
        pixels = np.asarray(image, dtype=np.float32)
        rows, cols = pixels.shape
        views = [pixels, pixels[:, ::-1]]
        for _ in range(crops):
            height, width = int(rows * rng.uniform(0.8, 1.0)), int(cols * rng.uniform(0.8, 1.0))
            top, left = int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1))
            views.append(pixels[top: top + height, left: left + width])
        thumbs.extend(thumbnail(view).ravel() - 0.5 for view in views)
    positives = np.asarray(thumbs, dtype=np.float64)
    features = np.concatenate([positives, -positives])
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(positives))])
    weights = np.zeros(features.shape[1])
    penalty = l2 * len(labels) * np.eye(features.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(iterations):
        probability = 1.0 / (1.0 + np.exp(-np.clip(features @ weights, -30, 30)))
        gradient = features.T @ (probability - labels) + penalty @ weights
        hessian = (features * (probability * (1 - probability))[:, None]).T @ features + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-6:
            break
    return weights[:-1].reshape(THUMBNAIL, THUMBNAIL).astype(np.float32), float(weights[-1])
