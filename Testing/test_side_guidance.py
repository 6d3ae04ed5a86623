"""Side guidance (box-supervised training): the healing must fall in the half of the image that holds the lesion."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from test_box_guidance import boxed_manifest
from test_training import TINY

from PilletGANLib.engine import load_config, train
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.losses import PilletGANLoss, one_sided, side_balance_weights, side_guidance_loss
from PilletGANLib.metrics import truth_side
from PilletGANLib.networks import PatchDiscriminator


def one_sided_counts(lesion: torch.Tensor, eligible: torch.Tensor) -> tuple[int, int]:
    """How many images :func:`one_sided` finds on each side: ``(left, right)``."""
    left, right = one_sided(lesion, eligible)
    return int(left.sum()), int(right.sum())


def _truth(side: str, size: int = 8) -> torch.Tensor:
    """A ``(1, 1, size, size)`` box wholly in the ``left`` or ``right`` half, or across the middle (``both``)."""
    mask = torch.zeros(1, 1, size, size)
    columns = {"left": slice(1, 3), "right": slice(size - 3, size - 1), "both": slice(2, size - 2)}[side]
    mask[..., 2:5, columns] = 1.0
    return mask


def _healing(side: str, size: int = 8, amount: float = 0.4) -> torch.Tensor:
    """A healed image that differs from zeros only in one half (or everywhere alike, ``both``)."""
    healed = torch.zeros(1, 1, size, size)
    columns = {"left": slice(0, size // 2), "right": slice(size - size // 2, size), "both": slice(0, size)}[side]
    healed[..., columns] = amount
    return healed


def test_side_guidance_is_the_share_of_the_healing_in_the_other_half() -> None:
    real, guided = torch.zeros(1, 1, 8, 8), torch.tensor([True])
    lesion = _truth("left")
    assert side_guidance_loss(real, _healing("left"), lesion, guided).item() == pytest.approx(0.0)
    assert side_guidance_loss(real, _healing("right"), lesion, guided).item() == pytest.approx(1.0)
    assert side_guidance_loss(real, _healing("both"), lesion, guided).item() == pytest.approx(0.5)
    # scale-free, and where in the sick half does not matter (box guidance's job, not this term's)
    assert side_guidance_loss(real, 3 * _healing("both"), lesion, guided).item() == pytest.approx(0.5)
    assert side_guidance_loss(real, _healing("right"), _truth("right"), guided).item() == pytest.approx(0.0)


def test_side_guidance_counts_only_guided_one_sided_images() -> None:
    real = torch.zeros(4, 1, 8, 8)
    lesion = torch.cat([_truth("left"), _truth("both"), torch.zeros(1, 1, 8, 8), _truth("right")])
    healed = torch.cat([_healing("right")] * 4)  # wrong side for image 0, right side for image 3
    every = torch.tensor([True, True, True, True])
    assert side_guidance_loss(real, healed, lesion, every).item() == pytest.approx(0.5)  # (1 + 0) / 2
    assert side_guidance_loss(real, healed, lesion, torch.tensor([True, True, True, False])).item() == pytest.approx(1)
    assert side_guidance_loss(real, healed, lesion, torch.tensor([False, True, True, False])).item() == 0.0


def test_side_guidance_halves_leave_out_the_middle_column_of_an_odd_width() -> None:
    real = torch.zeros(1, 1, 7, 7)
    lesion = torch.zeros(1, 1, 7, 7)
    lesion[..., 1:3, 0:3] = 1.0
    healed = torch.zeros(1, 1, 7, 7)
    healed[..., 3] = 0.5  # the middle column only: no healing in either half
    healed[..., 0] = 0.5
    assert side_guidance_loss(real, healed, lesion, torch.tensor([True])).item() == pytest.approx(0.0)
    assert one_sided_counts(lesion, torch.tensor([True])) == (1, 0)
    lesion[..., 3] = 1.0  # truth touching the middle column is one-sided for neither (as in the laterality metric)
    assert one_sided_counts(lesion, torch.tensor([True])) == (0, 0)


def test_one_sided_images_are_those_of_the_laterality_metric() -> None:
    """The training term and the evaluation's laterality metric split the image at the same place (even and odd
    widths, truth on the middle column, empty and two-sided truth)."""
    generator = torch.Generator().manual_seed(3)
    for width in (8, 9):
        masks = torch.zeros(60, 1, 6, width)
        for index in range(60):
            start = int(torch.randint(0, width, (1,), generator=generator))
            stop = int(torch.randint(start, width + 1, (1,), generator=generator))
            masks[index, :, 1:4, start:stop] = 1.0
        for index, mask in enumerate(masks):
            eligible = torch.zeros(60, dtype=torch.bool)
            eligible[index] = True
            left, right = one_sided_counts(masks, eligible)
            expected = truth_side(mask[0].numpy())
            assert (left, right) == (int(expected == "left"), int(expected == "right")), (width, index)


def test_no_image_independent_map_can_lower_the_balanced_term() -> None:
    """With the training set's side weights, any fixed healing pattern scores 0.5 over a set of one-sided images,
    however unequal the two sides' counts: a location prior gains nothing, only finding the side does."""
    sides = ["left"] * 5 + ["right"] * 2
    lesion = torch.cat([_truth(side) for side in sides])
    real, guided = torch.zeros(7, 1, 8, 8), torch.ones(7, dtype=torch.bool)
    weights = side_balance_weights(*one_sided_counts(lesion, guided))
    torch.manual_seed(0)
    for _ in range(5):
        pattern = torch.rand(1, 1, 8, 8).expand(7, 1, 8, 8)  # the same healing on every image
        assert side_guidance_loss(real, pattern, lesion, guided, weights).item() == pytest.approx(0.5)
    assert side_guidance_loss(real, torch.cat([_healing("left")] * 7), lesion, guided).item() == pytest.approx(2 / 7)
    reads_the_image = torch.cat([_healing(side) for side in sides])
    assert side_guidance_loss(real, reads_the_image, lesion, guided, weights).item() == pytest.approx(0.0)


def test_side_balance_weights() -> None:
    assert side_balance_weights(3, 1) == pytest.approx((2 / 3, 2.0))
    assert side_balance_weights(4, 4) == pytest.approx((1.0, 1.0))
    assert side_balance_weights(0, 5) == (1.0, 1.0)


def test_side_guidance_moves_the_healing_to_the_sick_half() -> None:
    lesion = _truth("left")
    real = torch.zeros(1, 1, 8, 8)
    healed = torch.full((1, 1, 8, 8), 0.2, requires_grad=True)
    side_guidance_loss(real, healed, lesion, torch.tensor([True])).backward()
    # a step against the gradient shrinks the change in the right half and grows it in the left half
    assert (healed.grad[..., 4:] > 0).all()
    assert (healed.grad[..., :4] < 0).all()


def test_generator_objective_adds_side_guidance_only_when_weighted() -> None:
    torch.manual_seed(0)
    critic = PatchDiscriminator(in_channels=1, num_domains=2, image_size=8, base_channels=4, num_layers=2)
    real, fake, rec, same = (torch.rand(2, 1, 8, 8) for _ in range(4))
    lesion, guided = torch.cat([_truth("left"), _truth("right")]), torch.tensor([True, True])
    args = (critic, real, torch.tensor([1, 1]), torch.tensor([0, 0]), fake, rec, same)
    plain_total, plain = PilletGANLoss().generator_loss(*args)
    assert "side_guidance" not in plain
    loss = PilletGANLoss(lambda_side=2.0, side_weights=(0.75, 1.5))
    total, terms = loss.generator_loss(*args, lesion=lesion, guided=guided)
    expected = side_guidance_loss(real, fake, lesion, guided, (0.75, 1.5)).item()
    assert terms["side_guidance"].item() == pytest.approx(expected)
    assert total.item() == pytest.approx(plain_total.item() + 2.0 * expected, rel=1e-6)
    with pytest.raises(ValueError, match="lesion truth"):
        loss.generator_loss(*args)


def test_side_guidance_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"lambda_side must lie within \[0, "):
        load_config(overrides=["lambda_side=-1"])
    with pytest.raises(ConfigurationError, match="resident_data"):
        load_config(overrides=["lambda_side=1", "resident_data=false"])
    assert load_config(overrides=["lambda_side=2"]).loss_kwargs()["lambda_side"] == 2
    with pytest.raises(ConfigurationError, match=r"side_share must lie within \[0, 1\]"):
        load_config(overrides=["side_share=1.5"])
    with pytest.raises(ConfigurationError, match="side_share needs resident_data"):
        load_config(overrides=["side_share=0.5", "resident_data=false"])


@pytest.mark.slow
def test_side_guided_run_counts_the_sides_and_logs_the_term(tmp_path: Path, phantom_folders,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # one box on every disease image of the 64 px squares: the right half, then the left, alternately
    manifest = boxed_manifest(tmp_path, phantom_folders.root, lambda k: (6, 16, 20, 24) if k % 2 else (38, 16, 20, 24))
    config = load_config(overrides=[*TINY, "n_critic=1", "iterations=6", "val_interval=100", "lambda_side=5",
                                    "side_share=0.5"])
    with caplog.at_level(logging.INFO, logger="PilletGANLib.engine.workflow"):
        train(manifest, tmp_path / "run", config, progress=False)
    # 9 training disease images (3 of 12 held out): the odd-numbered 6 on the left, 3 on the right
    assert "side guidance: 6 left- and 3 right-sided training images" in caplog.text
    assert "one-sided oversampling: 1 of each batch's 2 disease images drawn from the 9 one-sided" in caplog.text
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    guidance = [s.value for s in events.Scalars("G/side_guidance")]
    assert len(guidance) == 6 and all(0 <= value <= 2 for value in guidance) and any(value > 0 for value in guidance)
