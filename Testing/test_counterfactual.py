"""Counterfactual healing: a frozen classifier's logits on the healed twins of diseased images join the generator's
objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import TINY, class_manifest

from PilletGANLib.engine import load_config, train
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.losses import PilletGANLoss, counterfactual_loss
from PilletGANLib.model_store import save_model
from PilletGANLib.networks import PatchDiscriminator, classifier_from_card
from PilletGANLib.networks.classifier import classifier_network_config


def test_the_term_is_the_mean_softplus_over_the_healed_images_and_its_gradient_reaches_only_them() -> None:
    twins = torch.zeros(3, 4, requires_grad=True)
    classifier = torch.nn.Linear(4, 1).requires_grad_(False)
    torch.nn.init.constant_(classifier.weight, 1.0)
    torch.nn.init.constant_(classifier.bias, 0.0)
    logits = classifier(twins + torch.tensor([[0.5], [-0.25], [0.0]])).reshape(-1)  # 2, -1, 0
    healed = torch.tensor([True, False, True])
    value = counterfactual_loss(logits, healed)
    softplus = torch.nn.functional.softplus
    assert value.item() == pytest.approx((softplus(torch.tensor(2.0)) + softplus(torch.tensor(0.0))).item() / 2)
    value.backward()
    assert twins.grad[0].abs().sum() > 0 and twins.grad[2].abs().sum() > 0 and twins.grad[1].abs().sum() == 0
    assert classifier.weight.grad is None  # frozen: nothing flows into the classifier
    assert counterfactual_loss(logits.detach(), torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_generator_objective_adds_the_term_only_when_weighted() -> None:
    torch.manual_seed(0)
    critic = PatchDiscriminator(in_channels=1, num_domains=2, image_size=8, base_channels=4, num_layers=2)
    real, fake, rec, same = (torch.rand(2, 1, 8, 8) for _ in range(4))
    args = (critic, real, torch.tensor([1, 0]), torch.tensor([0, 1]), fake, rec, same)
    logits, healed = torch.tensor([3.0, -2.0]), torch.tensor([True, False])
    plain_total, plain = PilletGANLoss().generator_loss(*args, counterfactual_logits=logits, healed=healed)
    assert "counterfactual" not in plain
    loss = PilletGANLoss(lambda_counterfactual=0.5)
    total, terms = loss.generator_loss(*args, counterfactual_logits=logits, healed=healed)
    expected = torch.nn.functional.softplus(torch.tensor(3.0)).item()
    assert terms["counterfactual"].item() == pytest.approx(expected)
    assert total.item() == pytest.approx(plain_total.item() + 0.5 * expected, rel=1e-6)
    with pytest.raises(ValueError, match="classifier's logits"):
        loss.generator_loss(*args)


def test_counterfactual_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"lambda_counterfactual must lie within \[0, "):
        load_config(overrides=["lambda_counterfactual=-1"])
    with pytest.raises(ConfigurationError, match="needs counterfactual_classifier"):
        load_config(overrides=["lambda_counterfactual=1"])
    config = load_config(overrides=["lambda_counterfactual=2", "counterfactual_classifier=clf.pt"])
    assert config.loss_kwargs()["lambda_counterfactual"] == 2


def _classifier(path: Path, image_size: int, margin: float) -> Path:
    network, cam_layer = classifier_network_config("densenet-small")
    card = {"name": "tiny classifier", "kind": "classifier", "network": network, "cam_layer": cam_layer,
            "preprocessing": {"image_size": image_size, "margin": margin}}
    torch.manual_seed(0)
    return save_model(classifier_from_card(card).state_dict(), card, path)


@pytest.mark.slow
def test_a_counterfactual_run_logs_the_term_and_refuses_a_classifier_of_another_size(tmp_path: Path,
                                                                                      phantom_folders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    manifest = class_manifest(tmp_path, phantom_folders.root)
    margin = load_config(overrides=TINY).margin
    wrong = _classifier(tmp_path / "clf128.pt", 128, margin)
    with pytest.raises(ConfigurationError, match="128 px"):
        train(manifest, tmp_path / "refused", load_config(overrides=[
            *TINY, "iterations=2", "lambda_counterfactual=1", f"counterfactual_classifier={wrong}"]), progress=False)
    classifier = _classifier(tmp_path / "clf.pt", 64, margin)
    config = load_config(overrides=[*TINY, "n_critic=1", "iterations=6", "val_interval=100",
                                    "lambda_counterfactual=1", f"counterfactual_classifier={classifier}"])
    train(manifest, tmp_path / "run", config, progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    values = [s.value for s in events.Scalars("G/counterfactual")]
    assert len(values) == 6 and all(value >= 0 for value in values) and any(value > 0 for value in values)
    assert (tmp_path / "run" / "model.pt").is_file()
