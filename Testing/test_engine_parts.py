"""Pieces of the training engine: balanced sampling, augmentation, gates, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from PilletGANLib.engine import TrainingConfig
from PilletGANLib.engine.augment import augment_batch
from PilletGANLib.engine.evaluator import gates_from_valid, summarize_records
from PilletGANLib.engine.sampling import BalancedBatchSampler
from PilletGANLib.engine.trainer import gated_translation, lung_edit_gates
from PilletGANLib.errors import ConfigurationError, DataError
from PilletGANLib.inference import Predictor, prepare_image
from PilletGANLib.inference.calibration import calibrate
from PilletGANLib.transforms import CXRGeometry


def test_balanced_batches_are_half_and_half_and_depend_only_on_the_iteration() -> None:
    labels = [0] * 30 + [1] * 7
    sampler = BalancedBatchSampler(labels, batch_size=8, seed=5)
    batches = [batch for batch, _ in zip(sampler, range(20), strict=False)]
    for batch in batches:
        assert sum(labels[i] for i in batch) == 4
    resumed = BalancedBatchSampler(labels, batch_size=8, seed=5)
    resumed.start_iteration = 13
    assert next(iter(resumed)) == batches[13]
    other_rank = BalancedBatchSampler(labels, batch_size=8, seed=5, rank=1)
    assert next(iter(other_rank)) != batches[0]


def test_sampler_refuses_one_class_or_odd_batches() -> None:
    with pytest.raises(DataError, match="both classes"):
        BalancedBatchSampler([0, 0, 0], batch_size=2)
    with pytest.raises(DataError, match="even"):
        BalancedBatchSampler([0, 1], batch_size=3)


def test_augmentation_is_reproducible_and_stays_in_range() -> None:
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    first = augment_batch(images, torch.Generator().manual_seed(1))
    again = augment_batch(images, torch.Generator().manual_seed(1))
    other = augment_batch(images, torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.min() >= -1 - 1e-6 and first.max() <= images.max() + 1e-6
    assert (first - images).abs().mean() < 0.5


def test_gates_follow_the_valid_area_minus_the_border() -> None:
    geometry = CXRGeometry(100, 50, 64)
    valid = torch.from_numpy(geometry.valid_mask().astype(np.float32))[None, None]
    gate = gates_from_valid(valid, border_fraction=0.1)[0, 0]
    cols = torch.nonzero(gate.any(0)).flatten()
    rows = torch.nonzero(gate.any(1)).flatten()
    assert int(cols.min()) > 16 and int(cols.max()) < 48  # padding (16 px each side) and a 10 % border excluded
    assert int(rows.min()) == 6 and int(rows.max()) == 57


def test_summaries_of_validation_records() -> None:
    records = [{"score": 0.9, "label": 1, "hit": True, "dice_top15": 0.5},
               {"score": 0.1, "label": 0, "hit": None, "dice_top15": None},
               {"score": 0.4, "label": 1, "hit": False, "dice_top15": 0.1}]
    summary = summarize_records(records)
    assert summary["detection_auc"] == 1.0
    assert summary["pointing_game"] == 0.5 and summary["dice_top15"] == pytest.approx(0.3)


def test_calibration_sets_a_threshold_that_masks_about_one_percent_of_healthy_pixels(tmp_path, dicom_dir) -> None:
    from PilletGANLib import load_cxr

    predictor = Predictor.from_path(make_tiny_model(tmp_path / "m.pt", image_size=64))
    predictor.localization.smoothing_sigma = 0.0
    image, meta = load_cxr(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    healthy = [prepare_image(image[i::2, j::2], meta, 64, 1.0) for i in range(2) for j in range(2)]
    fitted = calibrate(predictor, healthy, percentile=99.0)
    assert predictor.localization.threshold == fitted["threshold"] and fitted["healthy_images"] == 4
    _, _, diff, _ = predictor.network_maps(healthy)
    gates, _ = predictor.gates(healthy)
    heat = np.clip(diff.numpy() / fitted["heat_scale"], 0, 1)[gates.numpy() > 0]
    assert 0.003 < (heat >= fitted["threshold"]).mean() < 0.03


def test_removed_difference_keeps_only_brightness_the_healing_took_away() -> None:
    from PilletGANLib.errors import ConfigurationError
    from PilletGANLib.inference.lesion_map import LocalizationConfig, difference_maps

    images = torch.zeros(1, 1, 8, 8)
    healed = images.clone()
    healed[..., :4] = -0.5  # darker where an opacity was removed
    healed[..., 4:] = 0.25  # brighter elsewhere
    absolute = difference_maps(images, healed, LocalizationConfig(smoothing_sigma=0.0))
    removed = difference_maps(images, healed, LocalizationConfig(smoothing_sigma=0.0, difference="removed"))
    assert torch.allclose(absolute[..., :4], torch.tensor(0.5)) and torch.allclose(absolute[..., 4:], torch.tensor(0.25))
    assert torch.allclose(removed[..., :4], torch.tensor(0.5)) and torch.all(removed[..., 4:] == 0)
    with pytest.raises(ConfigurationError, match="difference"):
        LocalizationConfig(difference="squared")


def test_score_region_image_scores_beyond_the_lung_gate(dicom_dir) -> None:
    """With a lung gate, ``score_region='image'`` still scores evidence outside the estimated lungs."""
    from PilletGANLib import load_cxr
    from PilletGANLib.inference.lesion_map import LocalizationConfig, lesion_maps_and_scores, localization_gates

    image, meta = load_cxr(dicom_dir / "NIH_DX_UNCOMPRESSED.dcm")
    prepared = prepare_image(image, meta, 64, 1.0)
    images = prepared.network_input[None]
    healed = images.clone()
    healed[..., :6, 28:36] -= 1.0  # a change at the top centre (neck), outside the lung fields
    for region, expect_zero in (("map", True), ("image", False)):
        config = LocalizationConfig(smoothing_sigma=0.0, border_fraction=0.0, lung_gate=True, score_region=region,
                                    top_percent=1.0)
        map_gate, score_gate = localization_gates(prepared.network_input[0], prepared.geometry, config)
        maps, scores = lesion_maps_and_scores(images, healed, config, map_gate[None, None], score_gate[None, None])
        assert float(maps[..., :6, 28:36].max()) == 0.0, "the map is always lung-gated"
        assert (float(scores[0]) == 0.0) is expect_zero


def test_lung_edit_region_changes_only_the_lung_fields(shared_data) -> None:
    """With lung gates the translation keeps every pixel outside the estimated lungs; without, it does not."""
    from PilletGANLib import load_cxr
    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.transforms import estimate_lung_mask

    record = build_folder_manifest(shared_data / "nih1000_64px")[0]
    image = prepare_image(*load_cxr(record.image), 64, 0.9).network_input[None]
    gates = lung_edit_gates(image)
    expected = estimate_lung_mask(image[0, 0].numpy(), hull=True)
    assert gates.shape == (1, 1, 64, 64) and np.array_equal(gates[0, 0].numpy() > 0, expected)
    assert 0.05 < float(gates.mean()) < 0.6

    def brighten(x: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return x + 0.5, []

    healed, _ = gated_translation(brighten, image, torch.zeros(1, dtype=torch.long), gates)
    changed = (healed - image).abs()[0, 0] > 1e-6
    assert np.array_equal(changed.numpy(), expected)
    ungated, _ = gated_translation(brighten, image, torch.zeros(1, dtype=torch.long), None)
    assert torch.allclose(ungated, image + 0.5)


def test_lung_edit_region_needs_lung_gated_maps() -> None:
    with pytest.raises(ConfigurationError, match=r"lung_gate=true and localization\.score_region=map"):
        TrainingConfig(edit_region="lungs")
    with pytest.raises(ConfigurationError, match="edit_region must be"):
        TrainingConfig(edit_region="heart")
    config = TrainingConfig(edit_region="lungs", localization={"lung_gate": True, "score_region": "map"})
    assert config.to_dict()["edit_region"] == "lungs"
