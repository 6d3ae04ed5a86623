"""A Modality or VOI LUT item checked against its own descriptor before pydicom applies it (PS3.3 C.11.1.1.1).

LUT Descriptor is three numbers: entries (0 means 65536), first stored value mapped, bits per entry. pydicom
reads LUT Data by the descriptor and fails with Python errors (``struct.error``, ``uint12``, ``KeyError``) when the
two disagree. Here a descriptor or data that cannot be read is named; what a lenient reader reads anyway is settled
in the in-memory item (never the file), with a note: Modality LUT entries of 9 to 15 bits (the standard has 8 or
16) read as 16-bit words, LUT Data longer than the descriptor says (its first entries used), 8-bit entries packed two
to a word, and a first mapped value written unsigned over signed pixels (its VR follows Pixel Representation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..text import header_excerpt

__all__ = ["settle_lut_item"]


def _descriptor(item: Dataset) -> list[int] | None:
    """The descriptor's three whole numbers, else ``None``."""
    value: Any = item.get("LUTDescriptor")
    if not isinstance(value, MultiValue | list | tuple) or len(value) != 3:
        return None
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in value):
        return None
    return [int(number) for number in value]


def _data_words(item: Dataset) -> int | None:
    """How many 16-bit words (OW) or values (US, SS) LUT Data holds; ``None`` when it is absent or empty."""
    value: Any = item.get("LUTData")
    if value is None:
        return None
    if isinstance(value, bytes):
        return len(value) // 2 or None
    if isinstance(value, MultiValue | list | tuple):
        return len(value) or None
    return 1  # one value (VM 1)


def settle_lut_item(item: Dataset, name: str, signed_pixels: bool, any_depth: bool) -> tuple[str | None, str | None]:
    """``(problem, note)`` for one LUT item called ``name`` (e.g. ``"Modality LUT"``): ``problem`` when it cannot be
    read, ``note`` when the item was settled in memory as described in the module docstring; both ``None`` when it
    is as the standard has it. ``any_depth``: entries of 9 to 15 bits are standard here and read as they are (a VOI
    LUT); else only 8 and 16 are (a Modality LUT)."""
    descriptor = _descriptor(item)
    if descriptor is None:
        return (f"the header's {name} has a LUT Descriptor of {header_excerpt(item.get('LUTDescriptor'))}, not "
                "three whole numbers"), None
    entries, first, bits = descriptor
    entries = entries or 65536
    if not 8 <= bits <= 16:
        return f"the header's {name} gives {bits}-bit entries in its LUT Descriptor, where 8 to 16 are defined", None
    words = _data_words(item)
    if words is None:
        return f"the header's {name} has no LUT Data", None
    notes = []
    data = item.get("LUTData")
    if isinstance(data, bytes) and bits == 8 and entries > 1 and len(data) == entries:
        item.LUTData = np.frombuffer(data, dtype=np.uint8).astype("<u2").tobytes()  # packed: one entry a byte
        words = entries
        notes.append("8-bit entries packed two to a word, read one a byte")
    if words < entries:
        return (f"the header's {name} announces {entries} entries in its LUT Descriptor, its LUT Data holds "
                f"{words}"), None
    if words > entries:
        current = item.LUTData
        item.LUTData = current[: 2 * entries] if isinstance(current, bytes) else list(current)[:entries]
        notes.append(f"LUT Data holds {words} entries, more than the {entries} its descriptor announces; the first "
                     f"{entries} used")
    if 8 < bits < 16 and not any_depth:
        notes.append(f"{bits}-bit entries read as 16-bit words")
        bits = 16
    if signed_pixels and first >= 1 << 15:
        notes.append(f"first mapped value {first} written unsigned over signed pixels, read as {first - (1 << 16)}")
        first -= 1 << 16
    if notes:
        element = item["LUTDescriptor"]
        element.VR = "SS" if first < 0 else element.VR
        element.value = [descriptor[0], first, bits]
    return None, (f"the header's {name}: " + "; ".join(notes)) if notes else None
