"""Sanity checks of the map (PilletGANLib.evaluation.sanity): inversion, weight randomization, correlations, and
the report on predictors whose answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from PIL import Image

from PilletGANLib.data.manifest import ManifestRecord
from PilletGANLib.evaluation.sanity import (
    grey_inverted,
    map_correlations,
    randomized_network,
    sanity_images,
    sanity_report,
)
from PilletGANLib.inference import Predictor
from PilletGANLib.networks import GeneratorEnsemble, PilletGenerator
from PilletGANLib.transforms.pipeline import prepare_image


def test_randomized_network_reinitializes_every_weight_of_every_member_and_keeps_the_original():
    torch.manual_seed(0)
    members = [PilletGenerator(base_channels=8, num_res_blocks=1, attention="lta") for _ in range(2)]
    with torch.no_grad():
        for member in members:
            for gamma in member.gammas().values():
                gamma.fill_(0.7)  # as if trained
    ensemble = GeneratorEnsemble(members)
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    scrambled = randomized_network(ensemble, seed=5)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the global random stream is untouched
    for key, value in ensemble.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the original is unchanged
    original = dict(ensemble.named_parameters())
    for name, parameter in scrambled.named_parameters():
        if ".adn.N." in name:  # instance-norm affine parameters: back to their initial 1 and 0
            assert torch.all(parameter == (1.0 if name.endswith("weight") else 0.0)), name
        else:  # every conv, embedding and fusion weight of every member is drawn anew
            assert not torch.equal(parameter, original[name]), name
    gammas = [float(p.detach()) for name, p in scrambled.named_parameters() if name.endswith("gamma")]
    assert len(gammas) == 6 and all(g != 0.7 for g in gammas)
    again = randomized_network(ensemble, seed=5)
    other = randomized_network(ensemble, seed=6)
    for (name, a), b in zip(again.named_parameters(), scrambled.parameters(), strict=True):
        assert torch.equal(a, b), name  # the seed fixes the draw
    assert any(not torch.equal(b, c) for b, c in zip(scrambled.parameters(), other.parameters(), strict=True))


def test_grey_inverted_negates_the_image_and_keeps_the_padding():
    image = np.linspace(0, 1, 20 * 40, dtype=np.float32).reshape(20, 40)  # wide: padded above and below
    prepared = prepare_image(image, {}, 32, 1.0)
    inverted = grey_inverted(prepared)
    valid = torch.from_numpy(prepared.geometry.valid_mask())
    x, y = prepared.network_input[0], inverted.network_input[0]
    assert (~valid).any() and valid.any()
    torch.testing.assert_close(y[valid], -x[valid])
    torch.testing.assert_close(y[~valid], x[~valid])
    assert inverted.geometry is prepared.geometry and inverted.image is prepared.image


def test_map_correlations_known_values():
    rng = np.random.default_rng(0)
    a = rng.random((30, 20))
    assert map_correlations(a, a) == pytest.approx((1.0, 1.0))
    assert map_correlations(a, -a) == pytest.approx((-1.0, -1.0))
    assert map_correlations(a, a**3)[0] == pytest.approx(1.0)  # Spearman reads ranks: any increasing transform
    assert map_correlations(a, np.zeros_like(a)) == (None, None)  # a constant map has no correlation
    big = rng.random((1100, 900))  # strided to at most 512 a side: still exact for identical maps
    assert map_correlations(big, big) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="shapes"):
        map_correlations(a, a.T)


def test_sanity_images_put_disease_first_in_a_seeded_order():
    records = [ManifestRecord(image=f"/x/{i}.png", label="disease" if i % 3 == 0 else "healthy") for i in range(30)]
    chosen = sanity_images(records, 12, seed=1)
    assert [r.is_disease for r in chosen] == [True] * 10 + [False] * 2
    assert chosen == sanity_images(records, 12, seed=1) and chosen != sanity_images(records, 12, seed=2)
    assert len(sanity_images(records, 100)) == 30
    with pytest.raises(ValueError):
        sanity_images(records, 0)


def _images(tmp_path, count: int) -> list[ManifestRecord]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(path)
        records.append(ManifestRecord(image=path, label="disease" if i < 3 else "healthy"))
    return records


class _FakePredictor:
    """Maps that are a fixed prior (``kind="prior"``) or the network input itself (``kind="image"``); its "network" is
    a 1x1 conv whose weight scales the map, so randomizing it changes the map's scale only."""

    image_size, margin, batch_size = 32, 1.0, 2

    def __init__(self, kind: str, network: torch.nn.Module | None = None) -> None:
        self.kind = kind
        self.network = network or torch.nn.Conv2d(1, 1, 1, bias=False)

    def with_network(self, network):
        return _FakePredictor(self.kind, network)

    def predict_prepared(self, prepared):
        results = []
        for item in prepared:
            if self.kind == "prior":
                grid = np.add.outer(np.arange(32.0), np.arange(32.0))
            else:
                with torch.no_grad():
                    grid = self.network(item.network_input[None].float())[0, 0].numpy()
            results.append(SimpleNamespace(heatmap=item.geometry.map_to_source(grid)))
        return results


def test_report_flags_a_prior_and_passes_a_map_of_the_image(tmp_path):
    records = _images(tmp_path, 5)
    prior = sanity_report(_FakePredictor("prior"), records, count=4, progress=False)
    assert prior["available"] and prior["images"] == 4 and prior["disease"] == 3
    assert prior["inverted"]["spearman_median"] == pytest.approx(1.0)  # the same map whatever the image
    assert prior["randomized"]["spearman_median"] == pytest.approx(1.0) and prior["randomized"]["defined"] == 4
    assert prior["randomized"]["constant"] == 0
    zeroed = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.zeros_(zeroed.weight)  # a network whose map vanishes: no correlation, counted as constant
    vanishing = sanity_report(_FakePredictor("image").with_network(zeroed), records, count=4, progress=False)
    assert vanishing["inverted"] == {"spearman_median": None, "pearson_median": None, "defined": 0, "constant": 4}
    reading = sanity_report(_FakePredictor("image"), records, count=4, progress=False)
    assert reading["inverted"]["spearman_median"] == pytest.approx(-1.0)  # the map follows the image's grey levels
    assert reading["inverted"]["pearson_median"] == pytest.approx(-1.0)
    assert sorted(row["key"] for row in reading["per_image"][:3]) == ["img0", "img1", "img2"]  # disease first
    assert len(reading["per_image"]) == 4 and reading["seconds"] >= 0


def test_report_on_a_real_predictor(tmp_path):
    records = _images(tmp_path, 3)
    predictor = Predictor.from_path(make_tiny_model(tmp_path / "tiny.pt", attention="lta"), device="cpu", batch_size=2)
    report = sanity_report(predictor, records, count=3, seed=0, randomization_seed=0, progress=False)
    assert report["images"] == 3
    for check in ("inverted", "randomized"):
        assert report[check]["defined"] == 3
        assert -1 <= report[check]["spearman_median"] <= 1 and -1 <= report[check]["pearson_median"] <= 1
    assert report == {**report, "seed": 0, "randomization_seed": 0}
    # rerunning gives the same figures: the randomized weights are drawn with the fixed seed
    again = sanity_report(predictor, records, count=3, progress=False)
    assert again["per_image"] == report["per_image"]
