"""Where the stored bits sit in native pixel data's words, checked against the words themselves.

pydicom keeps bits 0 to Bits Stored - 1 of each word and clears the rest (it ignores High Bit). Two headers make
that the wrong image:

- High Bit above Bits Stored - 1 (legacy "MSB-aligned" data, bits 4-15 of 16 for 12 stored): the values sit where
  High Bit says. When most words hold bits above Bits Stored and none above High Bit, they are read from there,
  with a warning.
- Bits Stored understating the depth: most words hold bits above it, and High Bit does not explain them. Where
  the bits Bits Stored names hold almost nothing (fewer than :data:`MIN_LEVELS` values), the whole words are read,
  with a warning; otherwise the high bits are cleared as the header says (an overlay in the unused bits marks a
  few pixels, so this cannot be told from an overlay with certainty), with a warning that the image read may not
  be the radiograph.

Both look at unsigned 16- and 32-bit words only (8-bit data has no room for a second reading; signed data's high
bits carry the sign).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian

__all__ = ["HIGH_BITS_SHARE", "MIN_LEVELS", "settle_high_bits"]

#: Share of the words holding bits above Bits Stored beyond which the header is suspected (an overlay stored in the
#: unused bits marks far fewer).
HIGH_BITS_SHARE = 0.25
#: Fewer distinct values than this in the bits Bits Stored names (sampled) is no image there.
MIN_LEVELS = 8
#: Every this-many-th word is looked at.
_SAMPLE_STEP = 16


def _words(ds: Dataset, shape: tuple[int, int], allocated: int) -> np.ndarray:
    """The native pixel data as unsigned words of ``allocated`` bits, in the file's byte order, ``Rows x Columns``."""
    order = ">" if UID(ds.file_meta.TransferSyntaxUID) == ExplicitVRBigEndian else "<"
    words = np.frombuffer(ds.PixelData, dtype=f"{order}u{allocated // 8}", count=shape[0] * shape[1])
    return words.reshape(shape)


def settle_high_bits(ds: Dataset, pixels: np.ndarray, shape: tuple[int, int], stored: int, allocated: int,
                     high_bit: int) -> tuple[np.ndarray, int, str | None]:
    """``(pixels, bits, warning)`` for native unsigned ``allocated``-bit data of ``stored`` bits: ``pixels`` as decoded
    with ``bits = stored``; or, when the words hold their values at ``high_bit``, the words shifted down to bit 0
    (the caller keeps the low ``stored`` bits); or, when the bits Bits Stored names hold no image at all, the whole
    words with ``bits = allocated`` (see the module docstring)."""
    if allocated not in (16, 32) or not 0 < stored < allocated:
        return pixels, stored, None
    words = _words(ds, shape, allocated)
    sample = words.ravel()[::_SAMPLE_STEP]
    share = np.count_nonzero(sample >> stored) / max(sample.size, 1)
    if share <= HIGH_BITS_SHARE:
        return pixels, stored, None
    shift = high_bit + 1 - stored
    if shift > 0 and high_bit < allocated and (high_bit + 1 == allocated or not np.any(sample >> (high_bit + 1))):
        return (words >> shift).astype(np.int64), stored, (
            f"High Bit {high_bit} places the {stored} stored bits at bits {shift}-{high_bit} of each word, where "
            f"they are ({share:.0%} of the pixels hold bits above bit {stored - 1}); read from there")
    if np.unique(sample & ((1 << stored) - 1)).size < MIN_LEVELS:
        return words.astype(np.int64), allocated, (
            f"Bits Stored {stored} leaves no image: {share:.0%} of the pixels hold bits above it and the {stored} bits "
            f"below hold almost nothing; read as {allocated}-bit")
    return pixels, stored, (f"{share:.0%} of the pixels hold bits above Bits Stored ({stored} of {allocated} "
                            "allocated); cleared as the header says, so if the header understates the depth the image "
                            "read is not the radiograph")
