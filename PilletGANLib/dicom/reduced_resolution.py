"""Pixel data read at reduced resolution when the network reads far fewer pixels than the image has.

When the network reads the image at ``N`` pixels, the image is kept at the coarsest power-of-two reduction whose
longer side is still at least ``2 N`` (every network pixel then averages 2 x 2 or more read pixels): half
resolution from a longer side of ``4 N``, a quarter from ``8 N`` (:func:`reduction_level`). The reduced grid holds
``ceil(side / 2 ** level)`` pixels a side (:func:`reduced_shape`), reduced pixel ``r`` covering source pixels
``[r 2 ** level, (r + 1) 2 ** level)``; :mod:`PilletGANLib.transforms.working_grid` resamples it to the network
with the source geometry.

- **JPEG 2000** (:func:`reduced_resolution_pixels`) stores its image as a wavelet pyramid: each coarser level is a
  low-pass image of half the width and height of the one below, and decoding only up to it skips the finer levels'
  code blocks. For a 1955 x 1841 lossless radiograph on one core: 0.45 s in full, 0.13 s at half and 0.034 s at a
  quarter of the resolution. The level is also bounded by the codestream's own decomposition levels. Only the
  plain case takes this path: JPEG 2000 (lossless or not), one frame, one unsigned component whose bit depth
  equals Bits Stored, no image offset, no Pixel Padding Value. Anything else, and any codestream Pillow's OpenJPEG
  cannot read this way, returns ``None``: the caller decodes the full image with pydicom, which names the problem
  of a damaged file in its own words.
- **Any other pixel data** is decoded in full, read through its LUTs and checked as a full read is, then averaged
  over square blocks (:func:`area_reduce`): every decision about the file (refusals, warnings, the window left out)
  is the full read's, and the steps after the reader (normalization, padding to the square, the resize) run on a
  quarter of the pixels or fewer. Averaging the stored values before the LUTs would save the LUTs' cost too, but
  block means add grey levels, so the checks would keep a window or a bitmap that the full read refuses.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame

from ..text import error_excerpt
from .codestream import codestream_header

__all__ = [
    "MAX_REDUCTION_LEVEL",
    "MIN_READ_PIXELS_PER_NETWORK_PIXEL",
    "REDUCED_RESOLUTION_SYNTAXES",
    "area_reduce",
    "reduced_resolution_pixels",
    "reduced_shape",
    "reduction_level",
]

logger = logging.getLogger(__name__)

#: JPEG 2000 Image Compression (Lossless Only) and JPEG 2000 Image Compression.
REDUCED_RESOLUTION_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})
#: The reduced image's longer side must stay at least this many times the network's side.
MIN_READ_PIXELS_PER_NETWORK_PIXEL = 2
#: Halvings at most for pixel data averaged once read (a 16,384 px side for a 256 px network).
MAX_REDUCTION_LEVEL = 5


def reduction_level(longer_side: int, network_size: int, limit: int = MAX_REDUCTION_LEVEL) -> int:
    """Halvings of the resolution to read at: the most, within ``limit``, that keep the longer side at least
    :data:`MIN_READ_PIXELS_PER_NETWORK_PIXEL` times ``network_size`` (0: read in full)."""
    level = 0
    while level < limit and longer_side >= MIN_READ_PIXELS_PER_NETWORK_PIXEL * network_size * 2 ** (level + 1):
        level += 1
    return level


def reduced_shape(shape: tuple[int, int], level: int) -> tuple[int, int]:
    """``ceil(side / 2 ** level)`` for each side: the reduced grid of a ``shape`` image."""
    return tuple(math.ceil(side / 2**level) for side in shape)


def area_reduce(image: np.ndarray, level: int) -> np.ndarray:
    """The mean of each ``2 ** level`` square block of ``image`` (float32); a block cut by the image's last row or
    column averages the pixels it holds."""
    factor = 2**level
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    reduced = F.avg_pool2d(tensor, factor, stride=factor, ceil_mode=True)
    return reduced[0, 0].numpy()


#: Bits of the sample container Pillow returns per mode; it shifts each value left to fill it.
_CONTAINER_BITS = {"L": 8, "I;16": 16}


def _decode_reduced(codestream: bytes, bits: int, level: int) -> np.ndarray:
    """The codestream's pyramid decoded ``level`` halvings below full resolution, as stored values (Pillow's
    scaling undone)."""
    from PIL import Image

    with Image.open(io.BytesIO(codestream)) as image:
        # OpenJPEG gives ceil(side / 2**level) pixels; Pillow sizes its buffer as floor((side + 2**level / 2) /
        # 2**level), one short where the remainder is below half: the side it divides is nudged to agree (the
        # decoded shape is checked by the caller, so a Pillow that sizes it otherwise falls back to the full decode).
        power = 2**level
        image._size = tuple(side + power // 2 - 1 if side % power else side for side in image.size)
        image.reduce = level
        image.load()
        container = _CONTAINER_BITS.get(image.mode)
        if container is None or bits > container:
            raise ValueError(f"Pillow returned mode {image.mode} for {bits}-bit samples")
        reduced = np.asarray(image).astype(np.int32)
    return reduced >> (container - bits)


def reduced_resolution_pixels(ds: Dataset, shape: tuple[int, int], bits_stored: int, signed: bool,
                              network_size: int) -> tuple[np.ndarray, int] | None:
    """``(stored pixel values, level)``: ``ds`` decoded ``level`` halvings below full resolution (see
    :func:`reduction_level`), on the reduced grid of ``shape`` (Rows x Columns, :func:`reduced_shape`), or ``None``
    when the full decode is needed (not the plain JPEG 2000 case, an image smaller than ``4 x network_size``, or a
    codestream that cannot be read this way).

    ``ds`` is a single-frame greyscale image whose header the reader has checked; ``shape``, ``bits_stored`` and
    ``signed`` (Pixel Representation 1) are its validated Image Pixel values.
    """
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax not in REDUCED_RESOLUTION_SYNTAXES or signed or "PixelPaddingValue" in ds \
            or reduction_level(max(shape), network_size, 1) == 0:
        return None
    try:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths) \
            if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds else None
        codestream = get_frame(ds.PixelData, 0, extended_offsets=extended, number_of_frames=1)  # as the decoders
        header = codestream_header(codestream, syntax)
        if header is None or header.signed or header.offset != (0, 0) or header.components != 1 \
                or header.bits != bits_stored or (header.rows, header.columns) != shape or not header.decompositions:
            return None
        level = reduction_level(max(shape), network_size, header.decompositions)
        reduced = _decode_reduced(codestream, header.bits, level)
    except Exception as err:  # noqa: BLE001 - any failure here falls back to pydicom's full decode
        logger.debug("reduced-resolution JPEG 2000 decode not used: %s", error_excerpt(err))
        return None
    if reduced.shape != reduced_shape(shape, level):
        return None
    return reduced, level
