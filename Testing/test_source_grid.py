"""The predictor's source-grid step: one labelling for mask and boxes, the healed twin and attention maps resampled on
first read only (the source image read again only when asked for), and the same values as computing everything at
once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from conftest import make_tiny_model

from PilletGANLib.inference import Predictor
from PilletGANLib.postprocess import clean_mask, connected_boxes, heat_from_difference, mask_components
from PilletGANLib.transforms.pipeline import prepare_image


def test_mask_components_label_the_clean_mask_once_inside_its_window() -> None:
    heat = np.zeros((40, 60), dtype=np.float32)
    heat[5:15, 5:25] = 0.9  # a large component
    heat[30:32, 50:52] = 0.7  # a small one, removed
    heat[20:28, 40:44] = 0.6
    heat[3, 30:38] = 0.8  # a thin one: its bounding box (8 pixels) is smaller than the minimum (24), removed uncounted
    heat[30:38, 10] = heat[37, 10:14] = 0.55  # an L: its bounding box (32 pixels) is not, its 11 pixels are: counted
    components = mask_components(heat, 0.5, min_component_fraction=0.01)
    mask = components.mask
    assert np.array_equal(mask, clean_mask(heat, 0.5, 0.01)) and mask.sum() == 10 * 20 + 8 * 4
    assert (components.window[0].start, components.window[1].start) == (3, 5)  # labelled from the first mask pixel
    inside = np.zeros_like(mask)
    inside[components.window] = components.labels > 0
    assert np.array_equal(inside, mask)
    boxes = connected_boxes(components, heat, (0.5, 0.5))
    assert [(b.x1, b.y1, b.x2, b.y2, b.area_pixels) for b in boxes] == [(5, 5, 25, 15, 200), (40, 20, 44, 28, 32)]
    assert [b.score for b in boxes] == [np.float32(0.9), np.float32(0.6)] and boxes[0].mm == (2.5, 2.5, 12.5, 7.5)
    assert connected_boxes(mask_components(mask, 0.5), heat) == [dataclasses.replace(b, mm=None) for b in boxes]
    empty = mask_components(np.zeros((4, 4), np.float32), 0.5)
    assert empty.mask.shape == (4, 4) and not empty.mask.any() and connected_boxes(empty, np.zeros((4, 4))) == []


def test_healed_and_attention_are_resampled_when_read_and_match_the_network_outputs(tmp_path: Path) -> None:
    predictor = Predictor.from_path(make_tiny_model(tmp_path / "tiny.pt", attention="lta", image_size=32),
                                    device="cpu", backend="torch")
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 4000, (70, 50)).astype(np.float32)
    item = prepare_image(image, {"original_shape": [70, 50]}, predictor.image_size, predictor.margin)
    result = predictor.predict_prepared([item])[0]
    assert callable(object.__getattribute__(result, "healed"))
    assert callable(object.__getattribute__(result, "attention"))

    healed, attention, maps = predictor.network_maps([item])
    geometry = item.geometry
    difference = geometry.map_to_source(maps.maps[0, 0].numpy())
    np.testing.assert_allclose(result.difference, difference, atol=1e-6)
    np.testing.assert_allclose(result.healed, geometry.map_to_source(healed[0, 0].numpy()), atol=1e-6)
    assert isinstance(object.__getattribute__(result, "healed"), np.ndarray)  # kept after the first read
    assert len(result.attention) == len(attention) > 0
    for got, att in zip(result.attention, attention, strict=True):
        full = torch.nn.functional.interpolate(att[:1].float(), size=(32, 32), mode="bilinear", align_corners=False)
        np.testing.assert_allclose(got, geometry.map_to_source(full[0, 0].numpy()).clip(0, 1), atol=1e-6)
        assert got.shape == image.shape

    calibration, recipe = predictor.localizer.calibration, predictor.localizer.recipe
    heat = heat_from_difference(result.difference, calibration.heat_scale)
    components = mask_components(heat, calibration.threshold, recipe.min_component_fraction)
    assert np.array_equal(result.heatmap, heat) and np.array_equal(result.mask, components.mask)
    assert result.boxes == connected_boxes(components, heat, None)


def test_results_without_source_images_read_the_image_on_first_use(dicom_dir: Path, tmp_path: Path) -> None:
    predictor = Predictor.from_path(make_tiny_model(tmp_path / "tiny.pt", image_size=32), device="cpu",
                                    backend="torch", batch_size=2, num_workers=2)
    paths = sorted(dicom_dir.glob("*.dcm"))[:3]
    kept = list(predictor.predict_paths(paths))
    left = list(predictor.predict_paths(paths, source_images=False))
    assert [path for path, _ in left] == [path for path, _ in kept] == paths
    for (_, with_image), (_, without) in zip(kept, left, strict=True):
        assert callable(object.__getattribute__(without, "image"))
        assert without.score == with_image.score and without.boxes == with_image.boxes
        assert np.array_equal(without.heatmap, with_image.heatmap) and np.array_equal(without.mask, with_image.mask)
        np.testing.assert_array_equal(without.image, with_image.image)
        assert isinstance(object.__getattribute__(without, "image"), np.ndarray)  # kept after the first read
