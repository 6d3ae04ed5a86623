"""Checks of values read from files a user may edit (model cards, training configurations, map sidecars)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_finite_number"]


def is_finite_number(value: Any, integer: bool = False) -> bool:
    """Whether ``value`` is a finite real number, not a boolean (a whole one with ``integer``, ``2.0`` included).

    An integer too large for a float (a JSON number of hundreds of digits) is not one: ``math.isfinite`` would raise
    OverflowError on it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and (not integer or number.is_integer())
