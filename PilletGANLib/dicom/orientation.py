"""How the header says the image lies, against what the model reads: a frontal chest, stored with the patient's
right on the viewer's left and the head up (Patient Orientation ``L\\F``), in square pixels.

A frontal radiograph whose Patient Orientation says it is stored mirrored, upside down, rotated or transposed is
turned to ``L\\F`` for the network (:func:`reorientation`, the turn a
:class:`~PilletGANLib.transforms.CXRGeometry` applies) and its maps turned back to the stored grid, with a warning
that says so, unless its pixels contradict the header (:func:`settle_orientation`). A lateral view, an orientation
no chest radiograph has, or pixels that are not square (the network's square grid then shows the chest squashed) are
analysed as stored, with a warning: the lesion map is made on a picture the model was not trained on, and which
lung it marks may be the other one. The header is believed only where it speaks: an absent or unreadable Patient
Orientation, View Position or spacing gives no warning (a rotated image whose header says ``L\\F`` cannot be seen
from the header).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .polarity import polarity_logit

__all__ = ["FLIP_COLUMNS", "FLIP_ROWS", "FRONTAL_VIEWS", "LATERAL_VIEWS", "MAX_PIXEL_ASPECT", "ORIENTATION_MARGIN",
           "TRANSPOSE", "lateral_view", "orientation_warning", "pixel_aspect_warning", "reorientation",
           "settle_orientation", "turned"]

#: Bits of a turn: the stored image is transposed first, then its rows, then its columns reversed.
TRANSPOSE, FLIP_ROWS, FLIP_COLUMNS = 4, 2, 1

#: View Position values of a lateral chest radiograph, and of a frontal one.
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL"})
FRONTAL_VIEWS = frozenset({"AP", "PA"})
#: Row and column spacings differing by more than this factor are not square pixels.
MAX_PIXEL_ASPECT = 1.02
_STANDARD = ("L", "F")
_LETTERS = frozenset("APRLHF")
#: How the image is stored, by the first letters of its Patient Orientation's row and column directions.
_HOW = {("R", "F"): "mirrored left to right", ("L", "H"): "upside down (mirrored top to bottom)",
        ("R", "H"): "rotated by 180 degrees", ("F", "R"): "rotated by 90 degrees", ("H", "L"): "rotated by 90 degrees",
        ("F", "L"): "transposed (rows and columns swapped)", ("H", "R"): "transposed (rows and columns swapped)"}
#: The turn that brings each of those to ``L\\F`` (bits :data:`TRANSPOSE`, :data:`FLIP_ROWS`, :data:`FLIP_COLUMNS`).
_TURN = {("R", "F"): 1, ("L", "H"): 2, ("R", "H"): 3, ("F", "L"): 4, ("F", "R"): 5, ("H", "L"): 6, ("H", "R"): 7}
_TRUST = "analysed as stored, so the map is not to be trusted"
#: How much higher the polarity template's score (its magnitude: how much the picture is laid out like an upright
#: chest, whatever its polarity) must be for the pixels as stored than for the header's turn of them before the
#: header's Patient Orientation is overruled. On 423 radiographs kept aside from the template's fit (a third of SIIM
#: fold 3, RSNA, NIH, TBX11K, five real DICOM files), a header saying "turned" over upright pixels is overruled for 90-94 %
#: of them, a header telling the truth for at most 1 of 423 (``docs/reading.md``).
ORIENTATION_MARGIN = 3.0


def _directions(value: object) -> tuple[str, str] | None:
    """The first letters of Patient Orientation's row and column directions, or ``None`` when it says nothing."""
    if isinstance(value, str):
        value = value.split("\\")
    if not isinstance(value, Sequence) or len(value) != 2:
        return None
    letters = [str(part).strip().upper()[:1] for part in value]
    return (letters[0], letters[1]) if all(letter in _LETTERS for letter in letters) else None


def lateral_view(patient_orientation: object, view_position: object) -> str | None:
    """What in the header says the image is a lateral view (``"View Position LL"``, ``"Patient Orientation A\\F"``),
    or ``None``."""
    view = str(view_position or "").strip().upper()
    if view in LATERAL_VIEWS:
        return f"View Position {view}"
    if view in FRONTAL_VIEWS:  # the projection the header names outweighs an orientation written in its terms
        return None
    directions = _directions(patient_orientation)
    if directions is not None and {"A", "P"} & set(directions):
        return "Patient Orientation {}\\{}".format(*directions)
    return None


def turned(image: np.ndarray, orientation: int) -> np.ndarray:
    """A view of ``image`` (``(..., H, W)``) turned by ``orientation``: transposed, then its rows, then its columns
    reversed, as its bits say (:func:`~PilletGANLib.transforms.geometry.turn` does the same to tensors)."""
    if orientation & TRANSPOSE:
        image = np.swapaxes(image, -2, -1)
    if orientation & FLIP_ROWS:
        image = image[..., ::-1, :]
    return image[..., ::-1] if orientation & FLIP_COLUMNS else image


def reorientation(patient_orientation: object, view_position: object) -> int:
    """The turn (``orientation`` bits of :class:`~PilletGANLib.transforms.CXRGeometry`) that brings a frontal image
    stored as Patient Orientation says to ``L\\F``; 0 when it is stored so, says nothing, or is a lateral view."""
    if lateral_view(patient_orientation, view_position) is not None:
        return 0
    return _TURN.get(_directions(patient_orientation), 0)


def orientation_warning(patient_orientation: object, view_position: object) -> str | None:
    """A warning when Patient Orientation or View Position says the image is not a frontal chest stored as
    ``L\\F``; ``None`` when they agree with it or say nothing."""
    lateral = lateral_view(patient_orientation, view_position)
    if lateral is not None:
        return f"the header's {lateral} describes a lateral view; the model reads frontal chest radiographs: {_TRUST}"
    directions = _directions(patient_orientation)
    if directions is None or directions == _STANDARD or {"A", "P"} & set(directions):
        return None  # says nothing, says L\F, or names the frontal projection its View Position states
    standard = "the model reads a frontal chest as L\\F (the patient's right on the viewer's left, head up)"
    if directions in _TURN:
        return f"{_said(directions)}: turned to L\\F for the model, its maps turned back to the stored pixels"
    return f"{_said(directions)}, where {standard}: {_TRUST}"


def _said(directions: tuple[str, str]) -> str:
    how = _HOW.get(directions, "in an orientation no chest radiograph has")
    return "the header's Patient Orientation {}\\{} says the image is stored {}".format(*directions, how)


def settle_orientation(image: np.ndarray, patient_orientation: object, view_position: object) -> tuple[int, str | None]:
    """The turn to apply to ``image`` (as stored) and the warning to report.

    The header's turn (:func:`reorientation`) is followed unless the pixels contradict it: read as stored they look
    like an upright chest by :data:`ORIENTATION_MARGIN` more than turned as the header says (the polarity template's
    score, either sign); the image is then analysed as stored, with a warning naming both. A left-right mirror is
    followed without asking: the template is nearly symmetric and cannot tell.
    """
    turn = reorientation(patient_orientation, view_position)
    if turn in (0, FLIP_COLUMNS):
        return turn, orientation_warning(patient_orientation, view_position)
    as_stored, as_turned = abs(polarity_logit(image)), abs(polarity_logit(turned(image, turn)))
    if as_stored - as_turned <= ORIENTATION_MARGIN:
        return turn, orientation_warning(patient_orientation, view_position)
    return 0, (f"{_said(_directions(patient_orientation))}, but its pixels look like a chest stored upright, L\\F "
               f"(chest-layout score {as_stored:.1f} as stored against {as_turned:.1f} turned as the header says): "
               "analysed as stored; the header's Patient Orientation is probably wrong")


def pixel_aspect_warning(spacing: tuple[float, float] | None, aspect_ratio: object) -> str | None:
    """A warning when the (row, column) spacing in mm, or else Pixel Aspect Ratio (vertical, horizontal), says the
    pixels are not square; ``None`` when they are or nothing says."""
    if spacing is not None:
        row, column = spacing
        said = f"pixel spacing {row:g} mm between rows and {column:g} mm between columns"
    else:
        try:
            row, column = (float(part) for part in aspect_ratio)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return None
        if not (row > 0 and column > 0):
            return None
        said = f"Pixel Aspect Ratio {row:g}:{column:g}"
    ratio = column / row
    if max(ratio, 1 / ratio) <= MAX_PIXEL_ASPECT:
        return None
    shape = f"{ratio:.2g} times narrower" if ratio > 1 else f"{1 / ratio:.2g} times flatter"
    return (f"the pixels are not square ({said}): on the network's square grid the chest looks {shape} than it is; "
            f"{_TRUST}")
