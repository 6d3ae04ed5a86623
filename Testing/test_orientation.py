"""How the header says the image lies (Patient Orientation, View Position, pixel aspect) against the frontal, L\\F,
square-pixel chest the model reads; and sizes no chest radiograph has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import DX_8BIT, write_variant

from PilletGANLib import errors, load_cxr
from PilletGANLib.dicom.orientation import orientation_warning, pixel_aspect_warning


@pytest.mark.parametrize(("orientation", "how"), [
    (["R", "F"], "mirrored left to right"), ("L\\H", "upside down"), (["R", "H"], "rotated by 180 degrees"),
    (["F", "R"], "rotated by 90 degrees"), (["H", "R"], "transposed"), (["LA", "FP"], None), (["L", "F"], None),
    ("", None), (None, None), (["X", "F"], None), (["L"], None)])
def test_patient_orientation_other_than_l_f_is_named(orientation: object, how: str | None) -> None:
    warning = orientation_warning(orientation, "PA")
    if how is None:
        assert warning is None
    else:
        assert how in warning and "analysed as stored" in warning


@pytest.mark.parametrize(("orientation", "view"), [(["A", "F"], ""), (["L", "F"], "LL"), (None, "rl"),
                                                   (["P", "F"], None)])
def test_a_lateral_view_is_named(orientation: object, view: str | None) -> None:
    assert "describes a lateral view" in orientation_warning(orientation, view)


def test_a_frontal_view_position_outweighs_an_orientation_written_as_the_projection() -> None:
    """'A\\F' under View Position AP reads as the projection (anterior to posterior), not as a lateral."""
    assert orientation_warning(["A", "F"], "AP") is None


@pytest.mark.parametrize(("spacing", "aspect", "words"), [
    ((0.1, 0.2), None, "2 times narrower"), ((0.2, 0.1), None, "2 times flatter"), (None, [1, 2], "Aspect Ratio 1:2"),
    ((0.1, 0.101), None, None), (None, [1, 1], None), (None, None, None), (None, ["a", "b"], None),
    (None, [0, 1], None)])
def test_pixels_that_are_not_square_are_named(spacing: tuple[float, float] | None, aspect: object,
                                              words: str | None) -> None:
    warning = pixel_aspect_warning(spacing, aspect)
    assert (warning is None) if words is None else (words in warning)


def test_the_reader_says_how_the_header_says_the_image_lies(dicom_dir: Path, tmp_path: Path) -> None:
    expected, clean = load_cxr(dicom_dir / DX_8BIT)
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "mirrored.dcm", PatientOrientation=["R", "F"],
                                         PixelSpacing=[0.1, 0.2]))
    np.testing.assert_array_equal(image, expected)  # analysed as stored
    assert clean["warnings"] == []
    assert [w for w in meta["warnings"] if "R\\F" in w and "mirrored" in w]
    assert [w for w in meta["warnings"] if "not square" in w]


@pytest.mark.parametrize("shape", [(100, 300), (300, 100)])
def test_a_strip_is_no_chest_radiograph(dicom_dir: Path, tmp_path: Path, shape: tuple[int, int]) -> None:
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.Rows, ds.Columns = shape
    ds.PixelData = np.resize(ds.pixel_array, shape).tobytes()
    ds.save_as(tmp_path / "strip.dcm")
    with pytest.raises(errors.ImplausibleDimensionsError, match=r"one side 3\.0 times the other.*not a chest"):
        load_cxr(tmp_path / "strip.dcm")
