"""Attribute values of a DICOM header. Image Pixel attributes are read strictly: a damaged element or a value that is
not what the attribute must hold is named in a :class:`~PilletGANLib.errors.CorruptFileError`, never left to a Python
exception later. Descriptive attributes are read leniently: a damaged one is as if absent."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..errors import CorruptFileError
from ..text import error_excerpt, header_excerpt

__all__ = ["descriptive_value", "header_integer", "header_number", "parsed_value", "signed_pixels"]


def parsed_value(ds: Dataset, keyword: str, path: Path) -> Any:
    """The value of ``keyword`` in ``ds``, None when absent; :class:`CorruptFileError` naming the attribute when its
    element cannot be parsed (an unknown VR, a length its VR does not allow)."""
    try:
        return ds[keyword].value if keyword in ds else None
    except Exception as err:  # pydicom raises many types for a damaged element
        raise CorruptFileError(f"the header's {keyword} cannot be parsed ({error_excerpt(err)})", path) from err


def header_integer(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    """The single whole number ``keyword`` holds in ``ds``; ``default`` when it is absent or empty.

    Raises :class:`CorruptFileError` naming the attribute when it is absent and has no default, when its element
    cannot be parsed (an unknown VR, a length its VR does not allow) or when its value is not one whole number
    (several values, raw bytes, a fraction, text, infinity): such a header cannot say how to read the pixels.
    """
    value = parsed_value(ds, keyword, path)
    if value is None or value == "":
        if default is None:
            raise CorruptFileError(f"the image header lacks {keyword} (absent or empty); the pixel data cannot be "
                                   "interpreted", path)
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    shown = header_excerpt(value if isinstance(value, str | bytes | int | float) else list(value))
    raise CorruptFileError(f"the header's {keyword} is {shown}, not a single whole number; the pixel data cannot be "
                           "interpreted", path)


def header_number(ds: Dataset, keyword: str, path: Path) -> float | None:
    """The one finite number ``keyword`` holds; ``None`` when absent or empty; :class:`CorruptFileError` naming the
    attribute and its value otherwise (several values, text, raw bytes, NaN, infinity)."""
    value = parsed_value(ds, keyword, path)
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, MultiValue | list | tuple):
        problem = f"holds {len(value)} values"
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            problem = "is not a number"
        else:
            if math.isfinite(number):
                return number
            problem = "is not finite"
    raise CorruptFileError(f"the header's {keyword} {header_excerpt(value)} {problem}; it must be one finite number, "
                           "so the pixel values cannot be computed", path)


def descriptive_value(ds: Dataset, keyword: str) -> Any:
    """The attribute's value; ``None`` when absent or when its element cannot be parsed. A damaged descriptive
    attribute does not stop the image being read: those an output needs are checked where it is written."""
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom raises many types for a damaged element
        return None


def signed_pixels(ds: Dataset) -> bool:
    """Whether the stored pixels are signed (Pixel Representation 1), as the reader settled it in ``ds`` (its header
    checks have refused any other value)."""
    return int(ds.get("PixelRepresentation", 0) or 0) == 1
