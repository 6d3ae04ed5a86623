"""Pieces of the training engine: balanced sampling, augmentation, the lung edit region, wall time, caching."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from PilletGANLib.data.datasets import LungFieldsd
from PilletGANLib.engine import TrainingConfig
from PilletGANLib.engine.augment import augment_batch
from PilletGANLib.engine.evaluator import summarize_records
from PilletGANLib.engine.handlers import StopAtWallTime
from PilletGANLib.engine.sampling import BalancedBatchSampler
from PilletGANLib.engine.trainer import gated_translation, lung_edit_gates
from PilletGANLib.errors import ConfigurationError, DataError
from PilletGANLib.transforms import CXRGeometry
from PilletGANLib.transforms.pipeline import prepare_image


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
    with pytest.raises(DataError, match="focus indices must be disease"):
        BalancedBatchSampler([0, 1, 1], batch_size=2, focus=[0, 1], focus_share=0.5)
    with pytest.raises(DataError, match="focus_share"):
        BalancedBatchSampler([0, 1], batch_size=2, focus=[1], focus_share=1.5)


def test_focus_share_fills_its_slots_of_each_disease_half_and_zero_changes_nothing() -> None:
    labels = [0] * 30 + [1] * 40
    focus = [30, 31, 32]  # three of the forty disease images
    plain = BalancedBatchSampler(labels, batch_size=16, seed=3)
    for share, slots in ((0.5, 4), (0.25, 2), (1.0, 8)):
        sampler = BalancedBatchSampler(labels, batch_size=16, seed=3, focus=focus, focus_share=share)
        for iteration in range(30):
            batch = sampler.batch(iteration)
            assert sum(labels[i] for i in batch) == 8 and batch == sampler.batch(iteration)
            assert set(batch[-slots:]) <= set(focus)  # the focus slots, drawn with replacement from three
    unused = BalancedBatchSampler(labels, batch_size=16, seed=3, focus=focus, focus_share=0.0)
    empty = BalancedBatchSampler(labels, batch_size=16, seed=3, focus=[], focus_share=0.5)
    for iteration in range(10):  # the stream of a run without oversampling is unchanged
        assert unused.batch(iteration) == empty.batch(iteration) == plain.batch(iteration)
    share = np.mean([i in focus for k in range(200) for i in plain.batch(k)[8:]])
    assert share < 0.2  # without the focus, 3 of 40 disease images come up about 7.5 % of the time


def test_augmentation_is_reproducible_and_stays_in_range() -> None:
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    first, no_masks = augment_batch(images, torch.Generator().manual_seed(1))
    again, _ = augment_batch(images, torch.Generator().manual_seed(1))
    other, _ = augment_batch(images, torch.Generator().manual_seed(2))
    assert no_masks is None
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.min() >= -1 - 1e-6 and first.max() <= images.max() + 1e-6
    assert (first - images).abs().mean() < 0.5


def test_augmentation_warps_masks_with_their_images() -> None:
    """A mask that marks the bright square of its image still marks it after the shared warp."""
    images = torch.full((2, 1, 48, 48), -1.0)
    images[:, :, 12:30, 16:34] = 1.0
    masks = (images > 0).float()
    warped, warped_masks = augment_batch(images, torch.Generator().manual_seed(3), masks=masks,
                                         max_rotation_deg=10.0, max_shift=0.08, max_gamma=0.0)
    assert set(warped_masks.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(warped_masks, masks), "the masks moved"
    agreement = ((warped > 0).float() == warped_masks).float().mean()
    assert float(agreement) > 0.98


def test_summaries_of_validation_records() -> None:
    records = [{"score": 0.9, "label": 1, "hit": True, "dice_top15": 0.5},
               {"score": 0.1, "label": 0, "hit": None, "dice_top15": None},
               {"score": 0.4, "label": 1, "hit": False, "dice_top15": 0.1}]
    summary = summarize_records(records)
    assert summary["detection_auc"] == 1.0
    assert summary["pointing_game"] == 0.5 and summary["dice_top15"] == pytest.approx(0.3)


def test_lung_edit_region_changes_only_the_lung_fields(phantom_folders) -> None:
    """With lung gates the translation keeps every pixel outside the estimated lungs; without, it does not."""
    from PilletGANLib import load_cxr
    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.transforms import estimate_lung_mask

    record = build_folder_manifest(phantom_folders.root)[0]
    image = prepare_image(*load_cxr(record.image), 64, 0.9).network_input[None]
    gates = lung_edit_gates(image)
    expected = estimate_lung_mask(image[0, 0].numpy(), hull=True)
    assert gates.shape == (1, 1, 64, 64) and np.array_equal(gates[0, 0].numpy() > 0, expected)
    assert 0.05 < float(gates.mean()) < 0.6

    def brighten(x: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return x + 0.5, []

    cached = LungFieldsd("lung", "image")({"image": image[0]})["lung"]
    assert cached.shape == (1, 64, 64) and torch.equal(cached, gates[0]), "the cached masks are the same estimate"

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


def test_wall_time_budget_stops_a_run_and_is_validated() -> None:
    engine = Engine(lambda engine, batch: time.sleep(0.01))
    StopAtWallTime(0.05, time.time()).attach(engine)
    engine.run(range(1000), max_epochs=1)
    assert 2 <= engine.state.iteration < 100
    from_start = Engine(lambda engine, batch: time.sleep(0.01))
    StopAtWallTime(0.05).attach(from_start)  # counted from the engine's start
    from_start.run(range(1000), max_epochs=1)
    assert 2 <= from_start.state.iteration < 100
    unlimited = Engine(lambda engine, batch: None)
    StopAtWallTime(0.0).attach(unlimited)
    unlimited.run(range(50), max_epochs=1)
    assert unlimited.state.iteration == 50
    with pytest.raises(ValueError, match="seconds"):
        StopAtWallTime(-1.0)
    with pytest.raises(ConfigurationError, match="max_minutes"):
        TrainingConfig(max_minutes=-1)
    assert TrainingConfig(max_minutes=5.5).to_dict()["max_minutes"] == 5.5


def test_training_dataset_caches_every_deterministic_step(phantom_folders) -> None:
    """The in-memory cache holds finished items (truth and lung fields included): nothing is recomputed per
    iteration. A nested Compose would count as random for MONAI and silently disable the cache."""
    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.data.datasets import build_dataset

    records = build_folder_manifest(phantom_folders.root)[:3]
    dataset = build_dataset(records, 32, 0.9, progress=False, lung_fields=True)
    cached = dataset._cache[0]
    assert {"image", "lesion", "valid", "lung"} <= set(cached)
    assert tuple(cached["image"].shape) == (1, 32, 32) and tuple(cached["lung"].shape) == (1, 32, 32)
    assert dataset[0]["lung"] is cached["lung"], "items come from the cache, not from a new run of the transforms"


def test_disk_cached_items_collate_with_fresh_ones_and_keep_their_geometry(phantom_folders, tmp_path) -> None:
    """A ``cache_dir`` run mixes items read back from disk (MONAI stores no metadata) with freshly computed
    ones in one batch; both must collate, and a non-square image must keep its padding geometry."""
    from monai.data import list_data_collate
    from PIL import Image

    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.data.datasets import build_dataset, cache_folder, item_geometry
    from PilletGANLib.data.manifest import ManifestRecord

    source = build_folder_manifest(phantom_folders.root)[0].image
    wide = tmp_path / "wide.png"
    Image.open(source).convert("L").crop((0, 8, 64, 56)).save(wide)  # 48 rows x 64 cols
    records = [ManifestRecord(wide, "disease", boxes=np.array([[10.0, 10.0, 30.0, 30.0]])),
               ManifestRecord(source, "healthy")]
    dataset = build_dataset(records, 32, 0.9, cache_dir=str(tmp_path / "cache"))
    first = dataset[0]  # computed and written to the cache
    again = dataset[0]  # read back from the cache
    assert len(list((tmp_path / "cache").glob("*/*.pt"))) == 1
    batch = list_data_collate([again, dataset[1]])  # one from disk, one fresh
    assert tuple(batch["image"].shape) == (2, 1, 32, 32)
    assert item_geometry(first) == item_geometry(again) == CXRGeometry(48, 64, 32)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["valid"], again["valid"])
    assert again["valid"][0, 0].sum() == 0 and again["valid"][0, 16].sum() == 32, "padding rows are not valid"
    resized = build_dataset(records, 48, 0.9, cache_dir=str(tmp_path / "cache"))[0]
    assert tuple(resized["image"].shape) == (1, 48, 48), "another size does not read the 32 px cache"
    assert len(list((tmp_path / "cache").glob("*/*.pt"))) == 3
    folders = {cache_folder(tmp_path, 32, 0.9, lungs, m) for lungs, m in ((False, 0.0), (True, 0.0), (True, 0.05))}
    assert len(folders) == 3, "lung fields widened by another margin are cached apart"
