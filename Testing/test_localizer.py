"""The ``Localizer`` and its recipe: gates, difference, smoothing, mirror averaging, priors, score rule, calibration,
model cards old and new, and the three callers (Predictor, bundle transform, training evaluator) agreeing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from dicom_factory import DX_8BIT
from scipy import ndimage

from PilletGANLib import load_cxr
from PilletGANLib.engine.config import load_config, parse_overrides
from PilletGANLib.engine.trainer import lung_edit_gates
from PilletGANLib.errors import ConfigurationError, ModelError
from PilletGANLib.inference import Predictor
from PilletGANLib.inference.calibration import calibrate
from PilletGANLib.localization import (
    Calibration,
    Localizer,
    MapRecipe,
    border_gates,
    card_sections,
    fit_calibration,
    localization_from_card,
    lung_map_weights,
    valid_masks,
)
from PilletGANLib.model_store import default_model_path, load_model, read_card, save_model
from PilletGANLib.networks import PilletGenerator
from PilletGANLib.priors import LungFieldEstimator, LungFieldNet, OpacityTemplate, lung_box_prior
from PilletGANLib.transforms import CXRGeometry
from PilletGANLib.transforms.lungs import estimate_lung_mask, lung_fields_gate
from PilletGANLib.transforms.pipeline import prepare_image


def everywhere(batch: int, size: int) -> torch.Tensor:
    """Valid-area masks covering the whole grid."""
    return torch.ones(batch, 1, size, size)


def plain_recipe(**settings) -> MapRecipe:
    """No smoothing, no border: the map is the difference itself."""
    return MapRecipe(smoothing_sigma=0.0, border_fraction=0.0, **settings)


@pytest.fixture(scope="module")
def lung_fields() -> LungFieldEstimator:
    torch.manual_seed(0)
    return LungFieldEstimator(LungFieldNet())


# -- recipe and calibration ---------------------------------------------------------------------------------------


def test_recipe_settings_are_checked_with_their_name() -> None:
    for settings, message in (({"difference": "squared"}, "difference"),
                              ({"lung_weighting": "interior"}, "lung_weighting needs lung_gate"),
                              ({"lung_gate": True, "lung_weighting": "edges"}, "lung_weighting must be"),
                              ({"lung_gate": True, "lung_margin": 0.6}, "lung_margin must be in"),
                              ({"lung_prior": -0.1}, "lung_prior must be >= 0"),
                              ({"opacity_prior": -1.0}, "opacity_prior must be >= 0"),
                              ({"score_region": "lungs"}, "score_region"),
                              ({"top_percent": 0.0}, "top_percent")):
        with pytest.raises(ConfigurationError, match=message):
            MapRecipe(**settings)
    with pytest.raises(ConfigurationError, match=r"unknown localization setting\(s\) \['blur'\]"):
        MapRecipe.from_dict({"blur": 3})
    with pytest.raises(ConfigurationError, match="heat_scale must be > 0"):
        Calibration(heat_scale=0.0)


def test_old_cards_keep_their_fitted_values_and_new_cards_separate_them() -> None:
    """The Fixed-Point GAN baseline's card predates the split: its ``localization`` holds heat scale and threshold,
    which win over its ``calibration`` record; a card written now keeps the recipe and the fitted values apart."""
    baseline = read_card(default_model_path().with_name("baseline_fixed_point_gan.pt"))
    recipe, calibration = localization_from_card(baseline)
    old = baseline["localization"]
    assert calibration == Calibration(old["heat_scale"], old["threshold"])
    assert recipe == MapRecipe(**{k: v for k, v in old.items() if k not in ("heat_scale", "threshold")})
    sections = card_sections(recipe, calibration, {"percentile": 75.0})
    assert "threshold" not in sections["localization"]
    assert sections["calibration"] == {"heat_scale": old["heat_scale"], "threshold": old["threshold"],
                                       "detection_threshold": None, "detection_specificity": None, "percentile": 75.0}
    assert localization_from_card(sections) == (recipe, calibration)
    assert localization_from_card({}) == (MapRecipe(), Calibration())
    with pytest.raises(ConfigurationError, match="unknown localization setting"):
        localization_from_card({"localization": {"sharpen": True}})


def test_fit_calibration_masks_the_chosen_share_of_healthy_pixels() -> None:
    rng = np.random.default_rng(0)
    maps = [(rng.random((32, 32)).astype(np.float32), np.ones((32, 32))) for _ in range(4)]
    calibration, record = fit_calibration(maps, percentile=90.0, scale_percentile=100.0)
    pooled = np.concatenate([m.ravel() for m, _ in maps])
    assert calibration.heat_scale == pytest.approx(pooled.max())
    assert np.mean(pooled / calibration.heat_scale >= calibration.threshold) == pytest.approx(0.1, abs=0.01)
    assert record == {"percentile": 90.0, "scale_percentile": 100.0, "healthy_images": 4}
    with pytest.raises(ValueError, match="at least one healthy image"):
        fit_calibration([])


def test_overrides_name_recipe_settings_and_refuse_fitted_values() -> None:
    """``--set localization.KEY=VALUE`` (train and calibrate) leaves every other recipe setting as it was."""
    assert parse_overrides(["localization.lung_weighting=interior"], {}) == {"localization": {"lung_weighting": "interior"}}
    base = {"localization": {"lung_gate": True, "difference": "removed"}}
    out = parse_overrides(["localization.top_percent=3"], base)
    assert out["localization"] == {"lung_gate": True, "difference": "removed", "top_percent": 3.0}
    assert base["localization"] == {"lung_gate": True, "difference": "removed"}, "the base is not modified"
    with pytest.raises(ConfigurationError, match="unknown localization setting"):
        parse_overrides(["localization.sharpness=2"], {})
    with pytest.raises(ConfigurationError, match="'threshold' is fitted"):
        parse_overrides(["localization.threshold=0.3"], {})


def test_training_configs_written_before_the_split_still_load(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"localization": {"lung_gate": True, "heat_scale": 1.0, "threshold": 0.5}}))
    config = load_config(path)
    assert config.localization == MapRecipe(lung_gate=True).to_dict() and config.recipe.lung_gate


# -- gates ----------------------------------------------------------------------------------------------------------


def test_gates_follow_the_valid_area_minus_the_border() -> None:
    geometry = CXRGeometry(100, 50, 64)
    gate = border_gates(valid_masks([geometry]), border_fraction=0.1)[0, 0]
    cols = torch.nonzero(gate.any(0)).flatten()
    rows = torch.nonzero(gate.any(1)).flatten()
    assert int(cols.min()) > 16 and int(cols.max()) < 48  # padding (16 px each side) and a 10 % border excluded
    assert int(rows.min()) == 6 and int(rows.max()) == 57


def test_interior_lung_weighting_peaks_deep_in_the_lungs_and_keeps_the_binary_score_gate(dicom_dir) -> None:
    """``lung_weighting='interior'``: 0 outside the lungs, 1 at the deepest lung pixel, smaller near the edge."""
    image, meta = load_cxr(dicom_dir / DX_8BIT)
    prepared = prepare_image(image, meta, 64, 1.0)
    images, valid = prepared.network_input[None], valid_masks([prepared.geometry])
    lung_gate, lung_score = Localizer(MapRecipe(border_fraction=0.0, lung_gate=True)).gates(images, valid)
    interior = Localizer(MapRecipe(border_fraction=0.0, lung_gate=True, lung_weighting="interior"))
    weighted, weighted_score = interior.gates(images, valid)
    assert torch.equal(weighted_score, lung_score), "the detection score keeps the binary lung gate"
    inside = lung_gate[0, 0] > 0
    weighted = weighted[0, 0]
    assert float(weighted[~inside].abs().max()) == 0.0 and float(weighted.max()) == pytest.approx(1.0)
    edge = inside & ~torch.from_numpy(ndimage.binary_erosion(inside.numpy()))
    assert float(weighted[edge].max()) < 0.5 * float(weighted[inside].max())
    square = np.zeros((9, 9), dtype=bool)
    square[2:7, 2:7] = True
    weights = lung_map_weights(square, "interior")
    assert float(weights[4, 4]) == 1.0 and float(weights[2, 4]) == pytest.approx(1 / 3)


def test_lung_margin_widens_the_map_gate_and_the_edit_gate_alike(dicom_dir) -> None:
    """``lung_margin`` dilates each lung's hull by a fraction of the side: the inference-time map gate and
    the training edit gate are the same widened fields, and a margin of 0 is the hull itself."""
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
    localizer = Localizer(MapRecipe(border_fraction=0.0, lung_gate=True, lung_margin=0.05))
    map_gate, score_gate = localizer.gates(prepared.network_input[None], valid_masks([prepared.geometry]))
    assert torch.equal(map_gate[0, 0] > 0, torch.from_numpy(wide))
    assert torch.equal(score_gate[0, 0] > 0, torch.from_numpy(wide))
    edit = lung_edit_gates(prepared.network_input[None], margin=0.05)
    assert torch.equal(edit[0, 0] > 0, torch.from_numpy(wide)), "the generator edits what the map reads"
    with pytest.raises(ValueError, match="lung margin must be >= 0"):
        lung_fields_gate(network, -0.1)


# -- maps and scores ------------------------------------------------------------------------------------------------


def test_removed_difference_keeps_only_brightness_the_healing_took_away() -> None:
    images = torch.zeros(1, 1, 8, 8)
    healed = images.clone()
    healed[..., :4] = -0.5  # darker where an opacity was removed
    healed[..., 4:] = 0.25  # brighter elsewhere
    absolute = Localizer(plain_recipe()).lesion_maps(images, healed, everywhere(1, 8)).maps
    removed = Localizer(plain_recipe(difference="removed")).lesion_maps(images, healed, everywhere(1, 8)).maps
    assert torch.allclose(absolute[..., :4], torch.tensor(0.5)) and torch.allclose(absolute[..., 4:], torch.tensor(0.25))
    assert torch.allclose(removed[..., :4], torch.tensor(0.5)) and torch.all(removed[..., 4:] == 0)


def test_score_is_the_mean_of_the_top_percent_of_the_score_region() -> None:
    images = torch.zeros(1, 1, 10, 10)
    healed = images.clone()
    healed[0, 0, 0, :5] = -1.0  # five pixels of 1.0: the top 5 % of 100 pixels
    healed[0, 0, 5, :5] = -0.5
    maps = Localizer(plain_recipe(top_percent=5.0)).lesion_maps(images, healed, everywhere(1, 10))
    assert float(maps.scores[0]) == pytest.approx(1.0)
    maps = Localizer(plain_recipe(top_percent=10.0)).lesion_maps(images, healed, everywhere(1, 10))
    assert float(maps.scores[0]) == pytest.approx(0.75)


def test_score_region_image_scores_beyond_the_lung_gate(dicom_dir) -> None:
    """With a lung gate, ``score_region='image'`` still scores evidence outside the estimated lungs."""
    image, meta = load_cxr(dicom_dir / DX_8BIT)
    prepared = prepare_image(image, meta, 64, 1.0)
    images = prepared.network_input[None]
    healed = images.clone()
    healed[..., :6, 28:36] -= 1.0  # a change at the top centre (neck), outside the lung fields
    for region, expect_zero in (("map", True), ("image", False)):
        localizer = Localizer(plain_recipe(lung_gate=True, score_region=region, top_percent=1.0))
        maps = localizer.lesion_maps(images, healed, valid_masks([prepared.geometry]))
        assert float(maps.maps[..., :6, 28:36].max()) == 0.0, "the map is always lung-gated"
        assert (float(maps.scores[0]) == 0.0) is expect_zero


def test_mirror_average_maps_are_the_mean_of_both_passes_and_the_score_reads_the_plain_map() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    healed = images - 0.5 * (torch.rand(2, 1, 16, 16) > 0.9)  # "removed" brightness in a few pixels
    valid = everywhere(2, 16)
    plain = Localizer(plain_recipe(difference="removed"))
    localizer = Localizer(plain_recipe(difference="removed", mirror_average=True))
    assert plain.mirrored_healing(lambda batch: batch, images) is None, "no second pass unless the recipe asks"
    mirrored = localizer.mirrored_healing(lambda batch: batch - 0.25 * (batch > 0.5), images)  # a translation that is
    assert torch.equal(mirrored, images - 0.25 * (images > 0.5))                                # not mirror-invariant
    maps = localizer.lesion_maps(images, healed, valid, mirrored)
    plain_maps = plain.lesion_maps(images, healed, valid)
    mirror_maps = plain.lesion_maps(images, mirrored, valid)
    torch.testing.assert_close(maps.maps, (plain_maps.maps + mirror_maps.maps) / 2)
    torch.testing.assert_close(maps.scores, plain_maps.scores)
    with pytest.raises(ConfigurationError, match="mirror_average needs"):
        localizer.lesion_maps(images, healed, valid)


@pytest.mark.slow
def test_asymmetry_keeps_what_one_side_has_more_of_than_its_mirror_place() -> None:
    images = torch.zeros(2, 1, 8, 8)
    healed = images.clone()
    healed[0, 0, 2:4, 1:3] = -1.0  # left: 1.0
    healed[0, 0, 2:4, 5:7] = -0.25  # its mirror place on the right: 0.25
    healed[1, 0, 5, 1] = healed[1, 0, 5, 6] = -0.5  # symmetric
    valid = everywhere(2, 8)
    plain = Localizer(plain_recipe()).lesion_maps(images, healed, valid)
    full = Localizer(plain_recipe(asymmetry=1.0)).lesion_maps(images, healed, valid)
    torch.testing.assert_close(full.maps, (plain.maps - plain.maps.flip(-1)).clamp_min(0))
    assert torch.allclose(full.maps[0, 0, 2:4, 1:3], torch.tensor(0.75)) and float(full.maps[0, 0, :, 4:].max()) == 0
    assert float(full.maps[1].max()) == 0.0, "a symmetric map fades entirely"
    half = Localizer(plain_recipe(asymmetry=0.5)).lesion_maps(images, healed, valid)
    assert torch.allclose(half.maps[0, 0, 2:4, 1:3], torch.tensor(0.875))
    assert float(half.maps[0, 0, 2:4, 5:7].max()) == 0.0  # 0.25 - 0.5, clipped
    assert torch.equal(full.scores, plain.scores) and torch.equal(half.scores, plain.scores)
    assert torch.equal(Localizer(plain_recipe(asymmetry=0.0)).lesion_maps(images, healed, valid).maps, plain.maps)
    with pytest.raises(ConfigurationError, match="asymmetry must be >= 0"):
        MapRecipe(asymmetry=-0.1)


def test_lung_prior_is_added_to_the_map_and_leaves_the_score_alone(lung_fields: LungFieldEstimator) -> None:
    torch.manual_seed(0)
    images, healed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    valid = everywhere(2, 32)
    plain = Localizer(MapRecipe(border_fraction=0.0)).lesion_maps(images, healed, valid)
    maps = Localizer(MapRecipe(border_fraction=0.0, lung_prior=0.3), lung_fields=lung_fields).lesion_maps(
        images, healed, valid)
    priors = lung_box_prior(lung_fields.boxes(images), 32)
    assert float(priors.max()) > 0.5
    assert torch.allclose(maps.maps, plain.maps + 0.3 * priors)
    assert torch.equal(maps.scores, plain.scores) and maps.location_priors is None


@pytest.mark.slow
def test_opacity_prior_is_scaled_by_each_images_score_and_leaves_the_score_alone(lung_fields) -> None:
    torch.manual_seed(0)
    images, healed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    healed[1] = images[1]  # the second image is "healthy": no difference, score 0
    valid = everywhere(2, 32)
    template = OpacityTemplate(torch.rand(12, 12))
    plain = Localizer(MapRecipe(border_fraction=0.0)).lesion_maps(images, healed, valid)
    localizer = Localizer(MapRecipe(border_fraction=0.0, opacity_prior=4.0), lung_fields=lung_fields,
                          opacity_template=template)
    maps = localizer.lesion_maps(images, healed, valid)
    assert torch.equal(maps.scores, plain.scores) and float(maps.scores[1]) == 0.0
    priors = template.maps(lung_fields.boxes(images), 32)
    torch.testing.assert_close(maps.location_priors, priors)
    assert torch.allclose(maps.maps, plain.maps + 4.0 * plain.scores[:, None, None, None] * priors)
    assert torch.equal(maps.maps[1], plain.maps[1])  # no evidence, no prior


# -- its own dependencies ------------------------------------------------------------------------------------------


def test_a_recipe_without_its_prior_models_is_refused_once_with_what_to_pass(tmp_path: Path, lung_fields) -> None:
    with pytest.raises(ModelError, match=r"lung-field model.*--lung-fields"):
        Localizer(MapRecipe(lung_prior=0.1))
    with pytest.raises(ModelError, match=r"opacity-location template.*--opacity-prior"):
        Localizer(MapRecipe(opacity_prior=1.0), lung_fields=lung_fields)
    model = make_tiny_model(tmp_path / "tiny.pt")
    card = {**read_card(model), "localization": {"lung_prior": 0.1}}
    with pytest.raises(ModelError, match="lung-field model"):
        Predictor(PilletGenerator(**card["network"]), card, device="cpu")
    localizer = Localizer(MapRecipe(lung_prior=0.1), lung_fields=lung_fields)
    with pytest.raises(ModelError, match="opacity-location template"):
        localizer.with_recipe(MapRecipe(opacity_prior=1.0))
    assert localizer.with_recipe(MapRecipe()).lung_fields is lung_fields


def test_from_card_loads_only_the_priors_its_recipe_draws() -> None:
    shipped = default_model_path()
    card = read_card(shipped)
    default = Localizer.from_card(card, shipped)
    assert default.recipe.opacity_prior == 0, "the box-supervised template is opt-in, never the default"
    assert default.opacity_template is None
    opted_in = Localizer.from_card({**card, "localization": {**card["localization"], "opacity_prior": 1.5}}, shipped)
    assert opted_in.lung_fields is not None and opted_in.opacity_template is not None
    plain = Localizer.from_card({**card, "localization": {"difference": "removed"}}, shipped)
    assert plain.lung_fields is None and plain.opacity_template is None


# -- the callers ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_predictor_with_mirror_average_runs_a_second_pass_on_the_mirrored_image(tmp_path) -> None:
    """The card's ``mirror_average`` changes the map (not the score) by averaging in the mirrored pass."""
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


@pytest.mark.slow
def test_calibration_sets_a_threshold_that_masks_about_one_percent_of_healthy_pixels(tmp_path, dicom_dir) -> None:
    model = make_tiny_model(tmp_path / "m.pt", image_size=64)
    card = read_card(model)
    predictor = Predictor.from_path(model, localizer=Localizer(MapRecipe(smoothing_sigma=0.0)))
    image, meta = load_cxr(dicom_dir / DX_8BIT)
    healthy = [prepare_image(image[i::2, j::2], meta, 64, 1.0) for i in range(2) for j in range(2)]
    fitted = calibrate(predictor, healthy, percentile=99.0)
    assert predictor.localizer.calibration.threshold == fitted["threshold"] and fitted["healthy_images"] == 4
    _, _, maps = predictor.network_maps(healthy)
    heat = np.clip(maps.maps.numpy() / fitted["heat_scale"], 0, 1)[maps.map_gates.numpy() > 0]
    assert 0.003 < (heat >= fitted["threshold"]).mean() < 0.03
    assert card.get("calibration") is None, "the model file is not touched"


@pytest.mark.slow
def test_predictor_bundle_transform_and_training_evaluator_make_the_same_maps(shared_data, tmp_path) -> None:
    """One recipe (lung gate, interior weighting, mirror averaging, removed difference) gives the same maps and
    scores through the Predictor, the bundle's ``LesionDifferenced`` + ``LocalizerInferer`` and the training
    evaluator, on the same network-grid images."""
    from monai.data import MetaTensor, list_data_collate

    from PilletGANLib.bundle import LesionDifferenced, LocalizerInferer
    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.data.datasets import build_dataset
    from PilletGANLib.engine.evaluator import LocalizationEvaluator
    from PilletGANLib.networks import HealthyTranslator

    records = build_folder_manifest(shared_data / "nih1000_64px")
    records = [r for r in records if r.is_disease and len(r.boxes)][:3] + [r for r in records if not r.is_disease][:1]
    recipe = MapRecipe(difference="removed", lung_gate=True, lung_weighting="interior", mirror_average=True,
                       top_percent=5.0)
    model = make_tiny_model(tmp_path / "m.pt", attention="lta", image_size=32)
    state, card, _ = load_model(model)
    card["localization"] = recipe.to_dict()
    predictor = Predictor.from_path(save_model(state, card, tmp_path / "recipe.pt"), device="cpu")
    prepared = [prepare_image(*load_cxr(r.image), 32, 1.0) for r in records]
    _, _, expected = predictor.network_maps(prepared)

    network = predictor.translator
    inferer = LocalizerInferer(predictor.localizer)
    transform = LesionDifferenced("pred", predictor.localizer)
    for index, item in enumerate(prepared):
        image = MetaTensor(item.network_input, meta={"cxr_geometry": item.geometry.to_dict()})
        with torch.no_grad():
            output = inferer(image[None].as_tensor(), network)[0]
        assert output.shape[0] == 4, "the mirrored pass is appended"
        result = transform({"image": image, "pred": output})
        torch.testing.assert_close(result["pred"].as_tensor(), expected.maps[index])
        assert float(result["score"]) == pytest.approx(float(expected.scores[index]), abs=1e-6)

    batch = list_data_collate(list(build_dataset(records, 32, 1.0, progress=False)))
    evaluator = LocalizationEvaluator("cpu", [batch], network.generator, predictor.localizer)
    scores = [r["score"] for r in evaluator._iteration(evaluator, batch)["records"]]
    np.testing.assert_allclose(scores, expected.scores.numpy(), atol=1e-6)
    assert isinstance(network, HealthyTranslator)


@pytest.mark.slow
def test_evaluator_estimates_the_lung_gate_when_the_batch_has_no_cached_masks(shared_data) -> None:
    """A pipeline without ``LungFieldsd`` (the bundle's) gets the same lung-gated validation records as one
    that caches the masks, instead of silently ungated maps."""
    from monai.data import list_data_collate

    from PilletGANLib.data import build_folder_manifest
    from PilletGANLib.data.datasets import build_dataset
    from PilletGANLib.engine.evaluator import LocalizationEvaluator

    records = build_folder_manifest(shared_data / "nih1000_64px")
    records = [r for r in records if r.is_disease and len(r.boxes)][:3] + [r for r in records if not r.is_disease][:3]
    batch = list_data_collate(list(build_dataset(records, 32, 0.9, progress=False, lung_fields=True, lung_margin=0.05)))
    torch.manual_seed(0)
    generator = PilletGenerator(in_channels=1, num_domains=2, base_channels=8, num_res_blocks=1).eval()

    def records_of(data: dict, gate: bool) -> list[dict]:
        recipe = MapRecipe(difference="removed", lung_gate=gate, lung_margin=0.05 if gate else 0.0)
        evaluator = LocalizationEvaluator("cpu", [data], generator, Localizer(recipe))
        return evaluator._iteration(evaluator, data)["records"]

    cached = records_of(batch, True)
    estimated = records_of({k: v for k, v in batch.items() if k != "lung"}, True)
    assert cached == estimated
    assert cached != records_of(batch, False), "the lung gate changes the maps"
