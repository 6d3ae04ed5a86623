"""How the header says the image lies (Patient Orientation, View Position, pixel aspect) against the frontal, L\\F,
square-pixel chest the model reads; and sizes no chest radiograph has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import DX_8BIT, write_variant

from PilletGANLib import errors, load_cxr
from PilletGANLib.dicom.orientation import orientation_warning, pixel_aspect_warning, reorientation, settle_orientation


@pytest.mark.parametrize(("orientation", "how", "turn"), [
    (["R", "F"], "mirrored left to right", 1), ("L\\H", "upside down", 2), (["R", "H"], "rotated by 180 degrees", 3),
    (["F", "L"], "transposed", 4), (["F", "R"], "rotated by 90 degrees", 5), (["H", "L"], "rotated by 90 degrees", 6),
    (["H", "R"], "transposed", 7), (["LA", "FP"], None, 0), (["L", "F"], None, 0), ("", None, 0), (None, None, 0),
    (["X", "F"], None, 0), (["L"], None, 0)])
def test_patient_orientation_other_than_l_f_is_named_and_turned(orientation: object, how: str | None,
                                                                turn: int) -> None:
    warning = orientation_warning(orientation, "PA")
    assert reorientation(orientation, "PA") == turn
    if how is None:
        assert warning is None
    else:
        assert how in warning and "turned to L\\F for the model" in warning


def test_an_orientation_no_chest_radiograph_has_is_analysed_as_stored() -> None:
    assert reorientation(["L", "L"], "PA") == 0
    assert "no chest radiograph has" in orientation_warning(["L", "L"], "PA") and \
        "analysed as stored" in orientation_warning(["L", "L"], "PA")


@pytest.mark.parametrize(("orientation", "view"), [(["A", "F"], ""), (["L", "F"], "LL"), (None, "rl"),
                                                   (["P", "F"], None)])
def test_a_lateral_view_is_named(orientation: object, view: str | None) -> None:
    assert "describes a lateral view" in orientation_warning(orientation, view)
    assert reorientation(orientation, view) == 0  # analysed as stored


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
    np.testing.assert_array_equal(image, expected)  # read as stored; the network gets it turned
    assert clean["warnings"] == [] and clean["reorientation"] == 0 and meta["reorientation"] == 1
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


_STORED_AS = {1: ["R", "F"], 2: ["L", "H"], 3: ["R", "H"], 4: ["F", "L"], 5: ["F", "R"], 6: ["H", "L"], 7: ["H", "R"]}


@pytest.mark.parametrize("turn", sorted(_STORED_AS))
def test_a_radiograph_stored_turned_gets_the_upright_maps_turned_back(dicom_dir: Path, tmp_path: Path,
                                                                       turn: int) -> None:
    """The same radiograph stored upright (L\\F) and turned (its header saying how): the same score, and maps, mask and
    boxes on the stored pixels that are the upright ones turned the same way (to float rounding)."""
    import torch
    from conftest import make_tiny_model

    from PilletGANLib.inference import Predictor
    from PilletGANLib.transforms.geometry import unturn

    pixels = pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array[:, :201]  # not square, an odd padding
    stored = np.ascontiguousarray(unturn(torch.from_numpy(pixels), turn).numpy())
    files = {}
    for name, array, orientation in (("upright", pixels, ["L", "F"]), ("turned", stored, _STORED_AS[turn])):
        files[name] = write_variant(dicom_dir, tmp_path / f"{name}.dcm", Rows=array.shape[0], Columns=array.shape[1],
                                    PixelData=array.tobytes(), PatientOrientation=orientation)
    model = make_tiny_model(tmp_path / "tiny.pt", image_size=32)
    for full in (True, False):
        predictor = Predictor.from_path(model, device="cpu", backend="torch", reduced_resolution_decode=not full)
        upright, turned = (predictor.predict_path(files[name]) for name in ("upright", "turned"))
        expected = unturn(torch.from_numpy(upright.difference), turn).numpy()
        assert turned.difference.shape == stored.shape
        if full:  # every pixel read: the same network input, so the same maps
            assert turned.score == pytest.approx(upright.score, abs=1e-6)
            np.testing.assert_allclose(turned.difference, expected, atol=1e-5)  # float sums in another order
            assert (turned.mask == unturn(torch.from_numpy(upright.mask), turn).numpy()).mean() > 0.999
            assert sorted(b.area_pixels for b in turned.boxes) == pytest.approx(
                sorted(b.area_pixels for b in upright.boxes), abs=2)
        else:  # read at a quarter: blocks cut at the stored image's far edges, elsewhere than the upright one's
            assert np.corrcoef(turned.difference.ravel(), expected.ravel())[0, 1] > 0.95


def test_the_monai_preprocessing_turns_the_image_too(dicom_dir: Path, tmp_path: Path) -> None:
    """The bundle's transforms (``LoadCXRd`` then ``SquarePadResized``) give a turned file the upright file's network
    input, and ``Invertd`` brings a map back onto the stored pixels."""
    import torch
    from monai.transforms import Invertd

    from PilletGANLib.transforms import cxr_preprocessing
    from PilletGANLib.transforms.geometry import unturn

    pixels = pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array[:, :201]
    stored = np.ascontiguousarray(unturn(torch.from_numpy(pixels), 5).numpy())
    upright = write_variant(dicom_dir, tmp_path / "upright.dcm", Rows=256, Columns=201, PixelData=pixels.tobytes())
    turned = write_variant(dicom_dir, tmp_path / "turned.dcm", Rows=201, Columns=256, PixelData=stored.tobytes(),
                           PatientOrientation=_STORED_AS[5])
    preprocessing = cxr_preprocessing(32)
    first, second = preprocessing({"image": str(upright)}), preprocessing({"image": str(turned)})
    torch.testing.assert_close(second["image"].as_tensor(), first["image"].as_tensor())
    second["heat"] = second["image"].clone()
    restored = Invertd(keys="heat", transform=preprocessing, orig_keys="image", nearest_interp=False)(second)["heat"]
    assert tuple(restored.shape) == (1, 201, 256)


def test_the_polarity_check_reads_a_turned_image_upright(dicom_dir: Path, tmp_path: Path) -> None:
    """The polarity template expects the abdomen at the bottom: a turned file whose header lies about its polarity is
    scored as the same file stored upright is (read as stored, these scores fall from -10.6 to -3.6)."""
    import torch

    from PilletGANLib.transforms.geometry import unturn

    pixels = pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array

    def polarity_warnings(turn: int, orientation: list[str]) -> list[str]:
        stored = np.ascontiguousarray(unturn(torch.from_numpy(pixels), turn).numpy())
        path = write_variant(dicom_dir, tmp_path / f"lying{turn}.dcm", PixelData=stored.tobytes(),
                             PhotometricInterpretation="MONOCHROME1", PatientOrientation=orientation)
        return [w for w in load_cxr(path)[1]["warnings"] if "photographic negative" in w]

    upright = polarity_warnings(0, ["L", "F"])
    assert len(upright) == 1 and "polarity score -10.6" in upright[0]
    for turn, orientation in _STORED_AS.items():
        assert polarity_warnings(turn, orientation) == upright


@pytest.mark.parametrize("turn", [2, 3, 4, 5, 6, 7])
def test_a_header_that_says_turned_over_upright_pixels_is_overruled(dicom_dir: Path, tmp_path: Path, turn: int) -> None:
    """Upright pixels under a Patient Orientation that says they are stored turned: analysed as stored, and the
    warning says the header is probably wrong; the same pixels stored turned follow the header."""
    import torch

    from PilletGANLib.transforms.geometry import unturn

    upright, plain = load_cxr(dicom_dir / DX_8BIT)
    image, meta = load_cxr(write_variant(dicom_dir, tmp_path / "lies.dcm", PatientOrientation=_STORED_AS[turn]))
    np.testing.assert_array_equal(image, upright)
    assert plain["reorientation"] == 0 and meta["reorientation"] == 0
    assert len(meta["warnings"]) == 1 and "look like a chest stored upright" in meta["warnings"][0] \
        and "probably wrong" in meta["warnings"][0]
    pixels = pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array
    stored = np.ascontiguousarray(unturn(torch.from_numpy(pixels), turn).numpy())
    _, truthful = load_cxr(write_variant(dicom_dir, tmp_path / "truthful.dcm", PixelData=stored.tobytes(),
                                         Rows=stored.shape[0], Columns=stored.shape[1],
                                         PatientOrientation=_STORED_AS[turn]))
    assert truthful["reorientation"] == turn and "turned to L\\F" in truthful["warnings"][0]


def test_a_header_that_says_mirrored_is_followed_without_asking_the_pixels() -> None:
    """The template cannot tell a chest from its mirror image: a mirror is taken from the header as it stands."""
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert settle_orientation(image, ["R", "F"], "PA")[0] == 1
    assert settle_orientation(image, ["L", "F"], "PA") == (0, None)
