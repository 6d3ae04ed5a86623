"""Pieces of the training engine: balanced sampling, augmentation, gates, calibration."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from dicom_factory import DX_8BIT
from ignite.engine import Engine
from scipy import ndimage

from PilletGANLib.data.datasets import LungFieldsd
from PilletGANLib.engine import TrainingConfig
from PilletGANLib.engine.augment import augment_batch
from PilletGANLib.engine.evaluator import gates_from_valid, summarize_records
from PilletGANLib.engine.handlers import StopAtWallTime
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
    image, meta = load_cxr(dicom_dir / DX_8BIT)
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

    image, meta = load_cxr(dicom_dir / DX_8BIT)
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


def test_mirror_average_maps_are_the_mean_of_both_passes_and_the_score_reads_the_plain_map() -> None:
    from PilletGANLib.inference.lesion_map import LocalizationConfig, lesion_maps_and_scores, mirrored_translation

    torch.manual_seed(0)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    healed = images - 0.5 * (torch.rand(2, 1, 16, 16) > 0.9)  # "removed" brightness in a few pixels
    gates = torch.ones(2, 1, 16, 16)
    plain = LocalizationConfig(difference="removed", smoothing_sigma=0.0, border_fraction=0.0)
    config = LocalizationConfig(difference="removed", smoothing_sigma=0.0, border_fraction=0.0, mirror_average=True)
    mirrored = mirrored_translation(lambda batch: batch - 0.25 * (batch > 0.5), images)  # a translation that is not
    assert torch.equal(mirrored, images - 0.25 * (images > 0.5))                          # mirror-invariant in general
    maps, scores = lesion_maps_and_scores(images, healed, config, gates, gates, mirrored)
    plain_maps, plain_scores = lesion_maps_and_scores(images, healed, plain, gates, gates)
    mirror_maps, _ = lesion_maps_and_scores(images, mirrored, plain, gates, gates)
    torch.testing.assert_close(maps, (plain_maps + mirror_maps) / 2)
    torch.testing.assert_close(scores, plain_scores)
    with pytest.raises(ConfigurationError, match="mirror_average needs"):
        lesion_maps_and_scores(images, healed, config, gates, gates)


def test_predictor_with_mirror_average_runs_a_second_pass_on_the_mirrored_image(tmp_path) -> None:
    """The card's ``mirror_average`` changes the map (not the score) by averaging in the mirrored pass."""
    from PilletGANLib.model_store import load_model, save_model

    plain_path = make_tiny_model(tmp_path / "plain.pt", image_size=64)
    state, card, _ = load_model(plain_path)
    card["localization"] = {**card.get("localization", {}), "mirror_average": True}
    mirror_path = save_model(state, card, tmp_path / "mirror.pt")
    image = np.random.default_rng(0).random((80, 64)).astype(np.float32)
    image[30:50, 5:25] += 1.0  # an asymmetric bright patch, so the two passes differ
    plain = Predictor.from_path(plain_path, device="cpu").predict_array(image)
    mirror = Predictor.from_path(mirror_path, device="cpu").predict_array(image)
    assert mirror.score == pytest.approx(plain.score)
    assert not np.allclose(mirror.difference, plain.difference)


def test_interior_lung_weighting_peaks_deep_in_the_lungs_and_keeps_the_binary_score_gate(dicom_dir) -> None:
    """``lung_weighting='interior'``: 0 outside the lungs, 1 at the deepest lung pixel, smaller near the edge."""
    from PilletGANLib import load_cxr
    from PilletGANLib.inference.lesion_map import LocalizationConfig, localization_gates, lung_map_weights

    image, meta = load_cxr(dicom_dir / DX_8BIT)
    prepared = prepare_image(image, meta, 64, 1.0)
    binary = LocalizationConfig(border_fraction=0.0, lung_gate=True)
    interior = LocalizationConfig(border_fraction=0.0, lung_gate=True, lung_weighting="interior")
    lung_gate, lung_score = localization_gates(prepared.network_input[0], prepared.geometry, binary)
    weighted, weighted_score = localization_gates(prepared.network_input[0], prepared.geometry, interior)
    assert torch.equal(weighted_score, lung_score), "the detection score keeps the binary lung gate"
    inside = lung_gate > 0
    assert float(weighted[~inside].abs().max()) == 0.0 and float(weighted.max()) == pytest.approx(1.0)
    edge = inside & ~torch.from_numpy(ndimage.binary_erosion(inside.numpy()))
    assert float(weighted[edge].max()) < 0.5 * float(weighted[inside].max())
    square = np.zeros((9, 9), dtype=bool)
    square[2:7, 2:7] = True
    weights = lung_map_weights(square, "interior")
    assert float(weights[4, 4]) == 1.0 and float(weights[2, 4]) == pytest.approx(1 / 3)
    with pytest.raises(ConfigurationError, match="lung_weighting needs lung_gate"):
        LocalizationConfig(lung_weighting="interior")
    with pytest.raises(ConfigurationError, match="lung_weighting must be"):
        LocalizationConfig(lung_gate=True, lung_weighting="edges")


def test_lung_margin_widens_the_map_gate_and_the_edit_gate_alike(dicom_dir) -> None:
    """``lung_margin`` dilates each lung's hull by a fraction of the side: the inference-time map gate and
    the training edit gate are the same widened fields, and a margin of 0 is the hull itself."""
    from PilletGANLib import load_cxr
    from PilletGANLib.inference.lesion_map import LocalizationConfig, localization_gates
    from PilletGANLib.transforms.lungs import estimate_lung_mask, lung_fields_gate

    image, meta = load_cxr(dicom_dir / DX_8BIT)
    prepared = prepare_image(image, meta, 64, 1.0)
    network = prepared.network_input[0].numpy()
    hull = estimate_lung_mask(network, hull=True)
    assert np.array_equal(lung_fields_gate(network, 0.0), hull)
    wide = lung_fields_gate(network, 0.05)
    assert wide[hull].all() and wide.sum() > hull.sum()
    ring = wide & ~hull
    distance = ndimage.distance_transform_edt(~hull)
    assert distance[ring].max() <= 0.05 * 64 + 1e-6, "no pixel further out than the margin"
    config = LocalizationConfig(border_fraction=0.0, lung_gate=True, lung_margin=0.05)
    map_gate, score_gate = localization_gates(prepared.network_input[0], prepared.geometry, config)
    assert torch.equal(map_gate > 0, torch.from_numpy(wide)) and torch.equal(score_gate > 0, torch.from_numpy(wide))
    edit = lung_edit_gates(prepared.network_input[None], margin=0.05)
    assert torch.equal(edit[0, 0] > 0, torch.from_numpy(wide)), "the generator edits what the map reads"
    with pytest.raises(ConfigurationError, match="lung_margin must be in"):
        LocalizationConfig(lung_gate=True, lung_margin=0.6)
    with pytest.raises(ValueError, match="lung margin must be >= 0"):
        lung_fields_gate(network, -0.1)


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


def test_localization_overrides_change_only_the_named_settings() -> None:
    """``--set localization.KEY=VALUE`` (train and calibrate) leaves every other localization setting as it was."""
    from PilletGANLib.engine.config import parse_overrides

    assert parse_overrides(["localization.lung_weighting=interior"], {}) == {"localization": {"lung_weighting": "interior"}}
    base = {"localization": {"lung_gate": True, "difference": "removed"}}
    out = parse_overrides(["localization.threshold=0.3"], base)
    assert out["localization"] == {"lung_gate": True, "difference": "removed", "threshold": 0.3}
    assert base["localization"] == {"lung_gate": True, "difference": "removed"}, "the base is not modified"
    with pytest.raises(ConfigurationError, match="unknown localization setting"):
        parse_overrides(["localization.sharpness=2"], {})


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


def test_evaluator_estimates_the_lung_gate_when_the_batch_has_no_cached_masks(phantom_folders) -> None:
    """A pipeline without ``LungFieldsd`` (the bundle's) gets the same lung-gated validation records as one
    that caches the masks, instead of silently ungated maps."""
    from monai.data import list_data_collate

    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.data.datasets import build_dataset
    from PilletGANLib.engine.evaluator import LocalizationEvaluator
    from PilletGANLib.inference.lesion_map import LocalizationConfig
    from PilletGANLib.networks import PilletGenerator

    records = build_folder_manifest(phantom_folders.root)
    records = [r for r in records if r.is_disease and len(r.boxes)][:3] + [r for r in records if not r.is_disease][:3]
    batch = list_data_collate(list(build_dataset(records, 32, 0.9, progress=False, lung_fields=True, lung_margin=0.05)))
    torch.manual_seed(0)
    generator = PilletGenerator(in_channels=1, num_domains=2, base_channels=8, num_res_blocks=1).eval()

    def records_of(data: dict, gate: bool) -> list[dict]:
        config = LocalizationConfig(difference="removed", lung_gate=gate, lung_margin=0.05 if gate else 0.0)
        evaluator = LocalizationEvaluator("cpu", [data], generator, config)
        return evaluator._iteration(evaluator, data)["records"]

    cached = records_of(batch, True)
    estimated = records_of({k: v for k, v in batch.items() if k != "lung"}, True)
    assert cached == estimated
    assert cached != records_of(batch, False), "the lung gate changes the maps"
