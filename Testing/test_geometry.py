"""Square pad + resize and its exact inverse back onto the source pixel grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dicom_factory import JPEG_BASELINE, MONO1_UNCOMPRESSED, SAMPLE_SHAPE
from monai.transforms import Invertd

from PilletGANLib.dicom.orientation import turned
from PilletGANLib.transforms import CXRGeometry, SquarePadResize, cxr_preprocessing
from PilletGANLib.transforms.geometry import turn, unturn
from PilletGANLib.transforms.working_grid import reduced_to_network


@pytest.mark.parametrize("shape", [(1955, 1841), (1024, 1024), (64, 64), (480, 1200), (2500, 2048)])
@pytest.mark.parametrize("size", [64, 256, 512])
def test_random_boxes_round_trip(shape: tuple[int, int], size: int) -> None:
    rng = np.random.default_rng(0)
    rows, cols = shape
    geometry = CXRGeometry(rows, cols, size)
    corners = np.sort(rng.uniform(0, [cols, rows, cols, rows], size=(200, 4)).reshape(200, 2, 2), axis=1)
    boxes = corners.transpose(0, 2, 1).reshape(200, 4)[:, [0, 2, 1, 3]]  # x1, y1, x2, y2
    back = geometry.boxes_to_source(geometry.boxes_to_network(boxes))
    assert np.abs(back - boxes).max() < 1.0


def test_network_box_lands_on_source_content(dicom_dir: Path) -> None:
    """A bright square painted into a radiograph is found at the same place after the round trip."""
    from PilletGANLib import load_cxr

    image, _ = load_cxr(dicom_dir / MONO1_UNCOMPRESSED)
    rows, cols = image.shape
    x1, y1, x2, y2 = round(0.38 * cols), round(0.46 * rows), round(0.6 * cols), round(0.66 * rows)
    bright = float(image.max()) * 2
    image[y1:y2, x1:x2] = bright
    geometry = CXRGeometry(rows, cols, 256)
    net = geometry.image_to_network(torch.from_numpy(image)[None])[0].numpy()
    ys, xs = np.nonzero(net > bright * 0.999)  # network pixels fully inside the square
    network_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=float)
    source_box = geometry.boxes_to_source(network_box)[0]
    step = 1 / geometry.scale  # one network pixel in source pixels
    assert np.abs(source_box - [x1, y1, x2, y2]).max() <= step


def test_pad_is_symmetric_and_valid_mask_matches() -> None:
    geometry = CXRGeometry(100, 60, 100)
    assert geometry.pad == (0, 0, 20, 20)
    valid = geometry.valid_mask()
    assert valid[:, :20].sum() == 0 and valid[:, 20:80].all() and valid[:, 80:].sum() == 0


def test_map_to_source_has_source_shape_and_identity_at_scale_one() -> None:
    geometry = CXRGeometry(64, 64, 64)
    array = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    np.testing.assert_allclose(geometry.map_to_source(array), array)
    wide = CXRGeometry(300, 500, 128)
    assert wide.map_to_source(np.zeros((128, 128), np.float32)).shape == (300, 500)


def test_size_must_be_multiple_of_four() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        SquarePadResize(250)


def test_invertd_brings_a_map_back_to_the_source_grid(dicom_dir: Path) -> None:
    preprocessing = cxr_preprocessing(128)
    data = preprocessing({"image": str(dicom_dir / JPEG_BASELINE)})
    image = data["image"]
    assert tuple(image.shape) == (1, 128, 128)
    assert float(image.min()) >= -1 and float(image.max()) <= 1
    data["heat"] = image.clone()
    restored = Invertd(keys="heat", transform=preprocessing, orig_keys="image", nearest_interp=False)(data)["heat"]
    assert tuple(restored.shape) == (1, *SAMPLE_SHAPE)


def test_margin_safe_normalization_keeps_values_inside(dicom_dir: Path) -> None:
    """Values stay within [-margin, margin]; the padding of a non-square image is the darkest value, -margin."""
    data = cxr_preprocessing(64, margin=0.9)({"image": str(dicom_dir / MONO1_UNCOMPRESSED)})
    assert float(data["image"].min()) == pytest.approx(-0.9, abs=1e-4)
    assert 0.8 < float(data["image"].max()) <= 0.9 + 1e-4


@pytest.mark.parametrize("orientation", range(8))
@pytest.mark.parametrize(("shape", "size"), [((61, 40), 32), ((40, 61), 32), ((90, 90), 64), ((203, 181), 64),
                                            ((256, 201), 32)])  # a network pixel's centre on the image's edge
def test_a_turned_image_reaches_the_network_as_the_image_stored_upright(orientation: int, shape: tuple[int, int],
                                                                        size: int) -> None:
    """Stored as ``unturn(upright)``: the same network input, valid area and boxes; maps come back turned."""
    upright = torch.from_numpy(np.random.default_rng(orientation).random(shape).astype(np.float32))[None]
    stored = unturn(upright, orientation)
    plain, turned = CXRGeometry(*shape, size), CXRGeometry(*stored.shape[-2:], size, orientation)
    torch.testing.assert_close(turned.image_to_network(stored, pad_value=-1.0), plain.image_to_network(upright, -1.0))
    np.testing.assert_array_equal(turned.valid_mask(), plain.valid_mask())
    network_map = torch.rand(1, size, size)
    torch.testing.assert_close(turned.image_to_source(network_map), unturn(plain.image_to_source(network_map), orientation))
    rows, cols = shape  # a box in the upright image and the same pixels' box in the stored one
    box = np.array([[0.25 * cols, 0.5 * rows, 0.75 * cols, 0.9 * rows]])
    marked = torch.zeros(1, *shape)
    marked[0, int(box[0, 1]):int(box[0, 3]), int(box[0, 0]):int(box[0, 2])] = 1
    ys, xs = np.nonzero(unturn(marked, orientation)[0].numpy())
    stored_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=float)
    upright_box = np.array([[int(box[0, 0]), int(box[0, 1]), int(box[0, 2]), int(box[0, 3])]], dtype=float)
    np.testing.assert_allclose(turned.boxes_to_network(stored_box), plain.boxes_to_network(upright_box), atol=1e-9)
    np.testing.assert_allclose(turned.boxes_to_source(plain.boxes_to_network(upright_box)), stored_box, atol=1e-9)


@pytest.mark.parametrize("orientation", range(8))
def test_a_turned_image_read_at_reduced_resolution_reaches_the_network_as_upright(orientation: int) -> None:
    """Reduced by whole blocks (sides a multiple of the block), the turned image's network input is the upright one's."""
    upright = torch.from_numpy(np.random.default_rng(0).random((192, 128)).astype(np.float32))[None]
    stored = unturn(upright, orientation)
    level, size = 2, 32
    reduce = torch.nn.functional.avg_pool2d
    expected = reduced_to_network(reduce(upright[None], 4)[0], CXRGeometry(192, 128, size), level, -1.0)
    got = reduced_to_network(reduce(stored[None], 4)[0], CXRGeometry(*stored.shape[-2:], size, orientation), level, -1.0)
    torch.testing.assert_close(got, expected)


def test_an_orientation_outside_the_eight_turns_is_refused() -> None:
    with pytest.raises(ValueError, match="orientation must be 0 to 7"):
        CXRGeometry(10, 10, 8, 8)


@pytest.mark.parametrize("orientation", range(8))
def test_the_numpy_turn_is_the_tensor_turn(orientation: int) -> None:
    array = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_array_equal(turned(array, orientation), turn(torch.from_numpy(array), orientation).numpy())
    np.testing.assert_array_equal(unturn(torch.from_numpy(np.ascontiguousarray(turned(array, orientation))),
                                         orientation).numpy(), array)
