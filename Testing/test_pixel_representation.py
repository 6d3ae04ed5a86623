"""A Pixel Representation the pixels contradict: values that wrap around under the header's reading are read with
the other one, with a warning; zero and saturated regions side by side are not a wrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import DX_8BIT, write_variant

from PilletGANLib import load_cxr
from PilletGANLib.dicom.pixel_representation import reinterpreted, settle_pixel_representation


def _stored(dicom_dir: Path) -> np.ndarray:
    return pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array


def test_unsigned_pixels_labelled_signed_are_read_as_unsigned(dicom_dir: Path, tmp_path: Path) -> None:
    expected, clean = load_cxr(dicom_dir / DX_8BIT)
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "labelled_signed.dcm", PixelRepresentation=1))
    np.testing.assert_array_equal(image, expected)
    assert clean["warnings"] == []
    assert [w for w in meta["warnings"] if w.startswith("Pixel Representation says signed")] == [
        next(w for w in meta["warnings"] if "wrap around as unsigned values read as signed" in w)]
    assert meta["warnings"][0].endswith("8-bit range): read as unsigned")


def _signed_16bit(dicom_dir: Path, target: Path, representation: int) -> Path:
    """The sample's anatomy as signed 16-bit values (-2048 and up), labelled with ``representation``."""
    values = (_stored(dicom_dir).astype(np.int16) * 16 - 2048).astype(np.int16)
    return write_variant(dicom_dir, target, BitsAllocated=16, BitsStored=16, HighBit=15,
                         PixelRepresentation=representation, PixelData=values.tobytes())


def test_signed_pixels_labelled_unsigned_are_read_as_signed(dicom_dir: Path, tmp_path: Path) -> None:
    expected, clean = load_cxr(_signed_16bit(dicom_dir, tmp_path / "signed.dcm", 1))
    image, meta = load_cxr(_signed_16bit(dicom_dir, tmp_path / "labelled_unsigned.dcm", 0))
    np.testing.assert_array_equal(image, expected)
    assert clean["warnings"] == []
    assert any(w.startswith("Pixel Representation says unsigned") and w.endswith("16-bit range): read as signed")
               for w in meta["warnings"])


def test_a_saturated_region_beside_dark_values_is_no_wrap(dicom_dir: Path) -> None:
    """A shutter saturated at 4095 beside collimation stored as 0 and dark anatomy, which never reaches half the
    12-bit range: the neighbours that jump between the ends hold one value at the top, not a contour. Kept
    unsigned."""
    values = _stored(dicom_dir).astype(np.int64) * 8
    columns = values.shape[1]
    values[:, : columns // 8], values[:, columns // 8: columns // 4] = 0, 4095  # one long edge between them
    kept, signed, warning = settle_pixel_representation(values, 12, signed=False)
    assert (signed, warning) == (False, None) and kept is values


@pytest.mark.parametrize("signed", [False, True])
def test_correctly_labelled_values_are_kept_and_their_mislabel_is_found(dicom_dir: Path, signed: bool) -> None:
    unsigned = _stored(dicom_dir).astype(np.int64) * 16
    right = unsigned - 2048 if signed else unsigned  # the same anatomy, stored as the label says
    assert settle_pixel_representation(right, 12, signed)[1:] == (signed, None)
    read, settled, warning = settle_pixel_representation(reinterpreted(right, 12, signed), 12, not signed)
    assert settled == signed and warning is not None
    np.testing.assert_array_equal(read, right)
