"""Pixel Representation checked against the pixels: signed values labelled unsigned, and unsigned labelled signed.

Read as unsigned, ``b``-bit values wrap between ``2**b - 1`` and 0; read as signed, between ``2**(b-1) - 1`` and
``-2**(b-1)``. A radiograph's grey levels change smoothly across most of the image, so where the header names the
wrong representation, neighbouring pixels whose stored values differ by a few steps land at the two ends of the
range: wherever the image's grey levels pass the wrapping value, a contour of jumps by nearly the whole range
appears, and the image read is not the radiograph (stop 48's hostile corpus: lungs no darker than the
mediastinum, a garbage map, no warning).

The check counts, on rows and columns sampled across the image, the neighbouring pixel pairs that step across each
representation's wrapping value by less than 1/16 of the range (a small step under the other reading). Under
the right reading such pairs are the image crossing the *other* reading's wrapping value, which is an ordinary
grey level there; under the wrong one they are the wrap itself. The header's representation is set aside only when
its own wrap is plain: at least :data:`MIN_WRAP_SHARE` of the pairs, :data:`MIN_WRAP_RATIO` times as many as cross
the other reading's wrapping value, with at least :data:`MIN_WRAP_VALUES` different stored values at each end of
the range (a wrap is a contour of grey levels on both sides; a shutter saturated at the top value beside dark air,
or burned-in text on a black border, is one value on one side). Then the other reading is used, with a warning.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_WRAP_RATIO", "MIN_WRAP_SHARE", "MIN_WRAP_VALUES", "reinterpreted", "settle_pixel_representation",
           "value_range"]

#: Share of the sampled neighbouring pairs that must step across the header's wrapping value.
MIN_WRAP_SHARE = 0.001
#: ... at least this many times as many as cross the other reading's wrapping value.
MIN_WRAP_RATIO = 20
#: ... with at least this many different stored values at each end of the range.
MIN_WRAP_VALUES = 4
#: Sampled rows and columns: about this many of each.
_SAMPLED_LINES = 64


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest value ``bits`` bits hold, signed (two's complement) or unsigned."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def reinterpreted(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """``bits``-bit stored ``values`` read with the other Pixel Representation (signed ones as unsigned when
    ``signed``, else unsigned ones as signed), as int64."""
    values = values.astype(np.int64)
    full = 1 << bits
    if signed:
        return np.where(values < 0, values + full, values)
    return np.where(values >= full // 2, values - full, values)


def _neighbour_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontally neighbouring pixels on sampled rows and vertically neighbouring ones on sampled columns."""
    row_step = max(1, values.shape[0] // _SAMPLED_LINES)
    column_step = max(1, values.shape[1] // _SAMPLED_LINES)
    rows, columns = values[::row_step], values[:, ::column_step]
    first = np.concatenate([rows[:, :-1].ravel(), columns[:-1].ravel()]).astype(np.int64)
    second = np.concatenate([rows[:, 1:].ravel(), columns[1:].ravel()]).astype(np.int64)
    return first, second


def _wrap_crossings(values: np.ndarray, bits: int, signed: bool) -> tuple[float, float, int]:
    """``(share crossing this reading's wrapping value, share crossing the other's, stored values among the former)``
    for the sampled neighbouring pairs of ``values`` read with ``signed``; the stored values are counted at each end
    of the range, and the fewer is given."""
    full = 1 << bits
    first, second = _neighbour_pairs(values)
    other_first, other_second = reinterpreted(first, bits, signed), reinterpreted(second, bits, signed)
    step, other_step = np.abs(first - second), np.abs(other_first - other_second)
    here = (step >= full // 2) & (other_step <= full // 16)
    there = (other_step >= full // 2) & (step <= full // 16)
    pairs = max(first.size, 1)
    ends = np.minimum(first[here], second[here]), np.maximum(first[here], second[here])
    values_here = min(np.unique(end).size for end in ends)
    return np.count_nonzero(here) / pairs, np.count_nonzero(there) / pairs, values_here


def _may_wrap(values: np.ndarray, bits: int, signed: bool) -> bool:
    """Whether ``values`` reach within 1/16 of the range of both ends of this reading (else nothing can wrap)."""
    low, high = value_range(bits, signed)
    margin = (1 << bits) // 16
    return int(values.min()) <= low + margin and int(values.max()) >= high - margin


def settle_pixel_representation(values: np.ndarray, bits: int, signed: bool
                                ) -> tuple[np.ndarray, bool, str | None]:
    """``(values, signed, warning)``: the stored ``values`` (``bits`` bits, read as the header's Pixel Representation
    ``signed`` says) kept, or read with the other representation when they wrap around under the header's (see the
    module docstring), with a warning saying so."""
    if not np.issubdtype(values.dtype, np.integer) or not 2 <= bits <= 32 or not _may_wrap(values, bits, signed):
        return values, signed, None
    here, there, distinct = _wrap_crossings(values, bits, signed)
    if here < MIN_WRAP_SHARE or here < MIN_WRAP_RATIO * there or distinct < MIN_WRAP_VALUES:
        return values, signed, None
    said, used = ("signed", "unsigned") if signed else ("unsigned", "signed")
    warning = (f"Pixel Representation says {said}, but the stored values wrap around as {used} values read as {said} "
               f"do ({here:.2%} of neighbouring pixels step between the two ends of the {bits}-bit range): read as "
               f"{used}")
    return reinterpreted(values, bits, signed), not signed, warning
