"""Pixel padding of a radiograph: the stored values its header marks as no image (collimation borders, a frame).

Pixel Padding Value, and with Pixel Padding Range Limit a range, mark those values (PS3.3 C.7.5.1.1.2). Padding is
optional: a value that is not one whole number is ignored with a warning, never a reason to refuse the image. Its
VR follows Pixel Representation, so a value written unsigned over signed pixels (63488 for -2048 in 16 bits) is read
signed; a value outside what Bits Stored allows, or one that covers every pixel, marks nothing, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ..errors import CorruptFileError
from ..text import header_excerpt
from .header_values import header_integer, parsed_value, signed_pixels
from .pixel_representation import value_range

__all__ = ["padding_mask"]

_KEYWORDS = ("PixelPaddingValue", "PixelPaddingRangeLimit")


def _shown(ds: Dataset, keyword: str) -> str:
    """The attribute's value as header text, for a message."""
    try:
        return header_excerpt(ds[keyword].value)
    except Exception:  # noqa: BLE001 - pydicom raises many types for a damaged element
        return "(cannot be parsed)"


def _as_signed(value: int, bits_allocated: int) -> int:
    """A padding value written unsigned over signed pixels, read as the signed value of the same bits."""
    return value - (1 << bits_allocated) if value >= 1 << (bits_allocated - 1) else value


def _stored_range(ds: Dataset) -> tuple[int, int]:
    """The values Bits Stored and Pixel Representation allow."""
    return value_range(int(ds.get("BitsStored", 16) or 16), signed_pixels(ds))


def padding_mask(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray | None, str | None]:
    """``(mask, warning)``: the stored pixels the header marks as padding (``None`` when none do), and a warning
    when the padding attributes were ignored (not whole numbers), lie outside the stored range, or cover every pixel.
    A value inside the range that no pixel holds is no padding in this image, said nothing about."""
    try:
        if parsed_value(ds, _KEYWORDS[0], path) in (None, "", b""):
            return None, None
        low = header_integer(ds, _KEYWORDS[0], path)
        high = header_integer(ds, _KEYWORDS[1], path, default=low)
    except CorruptFileError:
        shown = ", ".join(f"{keyword} {_shown(ds, keyword)}" for keyword in _KEYWORDS if keyword in ds)
        return None, f"the header's pixel padding is not whole numbers ({shown}); pixel padding ignored"
    if signed_pixels(ds):
        bits = int(ds.get("BitsAllocated", 16) or 16)
        low, high = _as_signed(low, bits), _as_signed(high, bits)
    low, high = min(low, high), max(low, high)
    described = f"{low}" if low == high else f"{low} to {high}"
    smallest, largest = _stored_range(ds)
    if high < smallest or low > largest:
        return None, (f"the header's pixel padding ({described}) lies outside the values Bits Stored allows "
                      f"({smallest} to {largest}); nothing treated as padding")
    mask = (stored >= low) & (stored <= high)
    if mask.all():
        return None, f"the header's pixel padding ({described}) covers every pixel; padding ignored"
    return (mask if mask.any() else None), None
