"""The Predictor's network backends: ONNX Runtime runs the same network as eager torch, within a bound."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from PilletGANLib.inference import Predictor, onnx_cache
from PilletGANLib.inference.onnx_backend import OnnxTranslator
from PilletGANLib.model_store import read_card
from PilletGANLib.networks import HealthyTranslator, PilletGenerator

#: largest difference allowed between the backends' healed images and attention maps (values in [-1, 1])
BOUND = 1e-4


def _predictors(model: Path) -> tuple[Predictor, Predictor]:
    return (Predictor.from_path(model, device="cpu", backend="torch"),
            Predictor.from_path(model, device="cpu", backend="onnxruntime"))


@pytest.mark.parametrize("attention", ["none", "lta"])
def test_onnxruntime_heals_what_torch_heals(tmp_path: Path, attention: str) -> None:
    pytest.importorskip("onnxruntime")
    eager, onnx = _predictors(make_tiny_model(tmp_path / "tiny.pt", attention=attention, image_size=32))
    assert (eager.backend, onnx.backend) == ("torch", "onnxruntime")
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    healed, attention_maps = eager.translate(images)
    onnx_healed, onnx_attention = onnx.translate(images)
    assert (healed - onnx_healed).abs().max() < BOUND
    assert len(attention_maps) == len(onnx_attention) and (len(attention_maps) > 0) == (attention == "lta")
    for expected, got in zip(attention_maps, onnx_attention, strict=True):
        assert expected.shape == got.shape and (expected - got).abs().max() < BOUND
    # one export serves other batch sizes and image sizes
    assert (eager.translate(images[:1] * 0.5)[0] - onnx.translate(images[:1] * 0.5)[0]).abs().max() < BOUND
    big = torch.rand(2, 1, 48, 48) * 2 - 1
    assert (eager.translate(big)[0] - onnx.translate(big)[0]).abs().max() < BOUND


def test_onnxruntime_results_match_torch_results(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    eager, onnx = _predictors(make_tiny_model(tmp_path / "tiny.pt", attention="lta", image_size=32))
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 4000, (70, 50)).astype(np.float32)
    expected, got = eager.predict_array(image), onnx.predict_array(image)
    assert abs(expected.score - got.score) < 1e-3
    assert np.abs(expected.difference - got.difference).max() < 1e-3


def test_auto_picks_onnxruntime_on_the_cpu_for_the_project_networks(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = make_tiny_model(tmp_path / "tiny.pt")
    assert Predictor.from_path(model, device="cpu").backend == "onnxruntime"
    assert Predictor.from_path(model, device="cpu", bf16=True).backend == "torch"

    class Custom(torch.nn.Module):  # not an exportable project network: torch runs it
        num_domains, in_channels = 2, 1

        def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            return x, []

    assert Predictor(Custom(), read_card(model), device="cpu").backend == "torch"
    with pytest.raises(ValueError, match="float32"):
        Predictor(PilletGenerator(base_channels=8, num_res_blocks=1), read_card(model), device="cpu", bf16=True,
                  backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor.from_path(model, device="cpu", backend="tensorrt")


def test_with_network_runs_the_new_network_on_every_backend(tmp_path: Path) -> None:
    """The sanity checks' randomized twin must run its own weights, not the original's exported session."""
    pytest.importorskip("onnxruntime")
    model = make_tiny_model(tmp_path / "tiny.pt", image_size=32)
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    for predictor in _predictors(model):
        other = Predictor.from_path(make_tiny_model(tmp_path / "other.pt", image_size=32, seed=1), device="cpu",
                                    backend="torch")
        twin = predictor.with_network(other.network)
        expected = other.translate(images)[0]
        assert (twin.translate(images)[0] - expected).abs().max() < BOUND
        assert (predictor.translate(images)[0] - expected).abs().max() > 10 * BOUND, "the original is unchanged"


def test_warm_up_exports_in_the_background_and_an_export_error_reaches_the_first_batch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    predictor = Predictor.from_path(make_tiny_model(tmp_path / "tiny.pt", image_size=32), device="cpu",
                                    backend="onnxruntime")
    runner = predictor._network
    assert runner.session is None  # nothing is exported before it is asked for
    predictor.warm_up()
    deadline = time.monotonic() + 120
    while runner.session is None and time.monotonic() < deadline:  # no batch has been given
        time.sleep(0.05)
    assert runner.session is not None
    predictor.warm_up()  # exported already: nothing more
    assert runner._export_done is None or runner._export_done.done()

    class Unexportable(PilletGenerator):
        def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            raise RuntimeError("this network cannot be traced")

    broken = OnnxTranslator(HealthyTranslator(Unexportable(base_channels=4, num_res_blocks=1)).eval())
    broken.start_export(32)
    with pytest.raises(RuntimeError, match="cannot be traced"):
        broken.heal(torch.zeros(1, 1, 32, 32))



def _tiny_translator(seed: int = 0) -> HealthyTranslator:
    torch.manual_seed(seed)
    return HealthyTranslator(PilletGenerator(base_channels=8, num_res_blocks=1, attention="lta")).eval()


def test_a_new_process_runs_the_cached_export_of_its_own_network_without_exporting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    expected = OnnxTranslator(_tiny_translator()).heal(images)
    cached = sorted((tmp_path / "cache" / "onnx").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith(".onnx")

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported although the cache holds this network")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    healed, attention = OnnxTranslator(_tiny_translator()).heal(images)  # the same network, built anew
    assert torch.equal(healed, expected[0]) and all(map(torch.equal, attention, expected[1]))
    with pytest.raises(AssertionError, match="exported although"):  # other weights: another key, a new export
        OnnxTranslator(_tiny_translator(seed=1)).heal(images)


def test_a_damaged_cached_export_is_named_in_a_warning_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    expected = _tiny_translator().heal(images)[0]
    OnnxTranslator(_tiny_translator()).heal(images)
    [cached] = (tmp_path / "cache" / "onnx").iterdir()
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger=onnx_cache.__name__):
        healed = OnnxTranslator(_tiny_translator()).heal(images)[0]
    assert "does not match its checksum" in caplog.text and cached.name in caplog.text
    assert (healed - expected).abs().max() < BOUND
    [replaced] = (tmp_path / "cache" / "onnx").iterdir()
    assert onnx_cache.read_export(replaced.parent, replaced.name.split("-")[0]) is not None


def test_without_a_usable_cache_the_export_stays_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    images = torch.rand(1, 1, 32, 32) * 2 - 1
    expected = _tiny_translator().heal(images)[0]
    monkeypatch.setenv(onnx_cache.CACHE_ENV, "")  # turned off
    assert onnx_cache.cache_dir() is None
    assert (OnnxTranslator(_tiny_translator()).heal(images)[0] - expected).abs().max() < BOUND
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(blocker))
    with caplog.at_level("WARNING", logger=onnx_cache.__name__):
        assert (OnnxTranslator(_tiny_translator()).heal(images)[0] - expected).abs().max() < BOUND
    assert "cannot be kept in the cache" in caplog.text and onnx_cache.CACHE_ENV in caplog.text
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_inductor_heals_what_torch_heals_with_one_compiled_graph_for_every_batch(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "tiny.pt", attention="lta", image_size=32)
    eager = Predictor.from_path(model, device="cpu", backend="torch")
    compiled = Predictor.from_path(model, device="cpu", backend="inductor", batch_size=2)
    assert compiled.backend == "inductor"
    torch._dynamo.reset()
    for count in (3, 1, 2):  # chunks of 2 and padded remainders
        images = torch.rand(count, 1, 32, 32) * 2 - 1
        healed, attention = eager.translate(images)
        compiled_healed, compiled_attention = compiled.translate(images)
        assert compiled_healed.shape == healed.shape and (compiled_healed - healed).abs().max() < BOUND
        assert len(compiled_attention) == len(attention) > 0
        for expected, got in zip(attention, compiled_attention, strict=True):
            assert expected.shape == got.shape and (expected - got).abs().max() < BOUND
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_bf16_where_the_device_emulates_it_is_named_in_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from PilletGANLib.inference import backends

    model = make_tiny_model(tmp_path / "tiny.pt", image_size=32)
    monkeypatch.setattr(backends, "native_bf16", lambda device: False)
    with caplog.at_level("WARNING", logger=backends.__name__):
        Predictor.from_path(model, device="cpu", bf16=True)
    assert "bf16 on cpu is emulated" in caplog.text
    caplog.clear()
    monkeypatch.setattr(backends, "native_bf16", lambda device: True)
    with caplog.at_level("WARNING", logger=backends.__name__):
        Predictor.from_path(model, device="cpu", bf16=True)
    assert caplog.text == ""
