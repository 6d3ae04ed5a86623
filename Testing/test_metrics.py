"""Metrics on hand-built cases whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from PilletGANLib.metrics import (
    RSNA_IOU_THRESHOLDS,
    PixelAUROC,
    box_iou,
    boxes_to_mask,
    brighter_than_mirror,
    detection_auc,
    detection_auc_interval,
    dice,
    froc,
    iou,
    laterality_mass,
    laterality_peak,
    laterality_summary,
    mean_interval,
    pixel_auroc,
    pointing_game,
    roc_curve,
    rsna_map,
    top_fraction_mask,
    truth_side,
)

NO_BOXES = np.zeros((0, 4))
NO_SCORES = np.zeros(0)


def _truth_two_boxes() -> np.ndarray:
    """10 x 12 image with two boxes: rows 1-3 x cols 1-3 and rows 5-8 x cols 7-10."""
    return boxes_to_mask([[1, 1, 4, 4], [7, 5, 11, 9]], (10, 12))


# -- detection AUC and ROC ---------------------------------------------------------------------
def test_detection_auc_perfect_inverted_and_single_class():
    assert detection_auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert detection_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert detection_auc([0.3, 0.4], [1, 1]) is None
    assert detection_auc([0.3, 0.4], [0, 0]) is None


def test_detection_auc_counts_ties_as_one_half():
    # positives 0.8, 0.5; negatives 0.5, 0.2: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4
    assert detection_auc([0.8, 0.5, 0.5, 0.2], [1, 1, 0, 0]) == pytest.approx(0.875, abs=1e-12)
    assert detection_auc([0.5] * 4, [0, 1, 0, 1]) == pytest.approx(0.5, abs=1e-12)


def test_detection_auc_healthy_image_with_a_false_positive():
    # the healthy image scoring 0.95 beats both disease images: pairs won 4 of 6
    assert detection_auc([0.9, 0.7, 0.95, 0.1, 0.2], [1, 1, 0, 0, 0]) == pytest.approx(4 / 6, abs=1e-12)


def test_roc_curve_points_with_ties():
    fpr, tpr, thresholds = roc_curve([0.8, 0.5, 0.5, 0.2], [1, 1, 0, 0])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.5, 0.2])
    with pytest.raises(ValueError, match="both classes"):
        roc_curve([0.1, 0.2], [1, 1])


# -- masks ---------------------------------------------------------------------------------------
def test_boxes_to_mask_uses_pixel_centres():
    # cols whose centre c + 0.5 is in [1, 3.4): 1, 2; rows whose centre is in [0.6, 2.5): 1
    expected = np.zeros((4, 5), dtype=bool)
    expected[1, 1:3] = True
    np.testing.assert_array_equal(boxes_to_mask([[1, 0.6, 3.4, 2.5]], (4, 5)), expected)
    # half-open at the far edge: centres 0.5 and 1.5 are inside [0.5, 2.5), 2.5 is not
    expected = np.zeros((4, 5), dtype=bool)
    expected[0:2, 0:2] = True
    np.testing.assert_array_equal(boxes_to_mask([[0.5, 0.5, 2.5, 2.5]], (4, 5)), expected)
    # clipped to the image, and empty without boxes
    assert boxes_to_mask([[-10, -10, 100, 100]], (4, 5)).all()
    assert not boxes_to_mask(NO_BOXES, (4, 5)).any()
    assert boxes_to_mask([[1, 1, 4, 4], [7, 5, 11, 9]], (10, 12)).sum() == 9 + 16


def test_dice_and_iou_known_values():
    pred = np.zeros((4, 4), dtype=bool)
    truth = np.zeros((4, 4), dtype=bool)
    pred[0, 0:4] = True  # 4 pixels
    truth[0, 2:4] = True
    truth[1, 0:4] = True  # 6 pixels, 2 shared with pred
    assert dice(pred, truth) == pytest.approx(2 * 2 / (4 + 6))
    assert iou(pred, truth) == pytest.approx(2 / 8)
    assert dice(truth, truth) == 1.0 and iou(truth, truth) == 1.0
    assert dice(~truth, truth) == 0.0 and iou(~truth, truth) == 0.0
    empty = np.zeros((4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, truth) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        dice(pred, truth[:3])


def test_top_fraction_mask_takes_exact_count_ties_in_row_major_order():
    values = np.arange(20, dtype=float).reshape(4, 5)  # 15 % of 20 pixels = 3: the values 19, 18, 17
    np.testing.assert_array_equal(np.flatnonzero(top_fraction_mask(values, 0.15)), [17, 18, 19])
    np.testing.assert_array_equal(np.flatnonzero(top_fraction_mask(np.ones((4, 5)), 0.15)), [0, 1, 2])
    tied = np.zeros((4, 5))
    tied[3, 4] = 2.0
    tied[1, 1:5] = 1.0  # one above the cut, four tied at it: take the first two of those
    np.testing.assert_array_equal(np.flatnonzero(top_fraction_mask(tied, 0.15)), [6, 7, 19])
    assert top_fraction_mask(values, 0.0).sum() == 0 and top_fraction_mask(values, 1.0).all()


# -- pointing game ---------------------------------------------------------------------------------
def test_pointing_game_perfect_inverted_outside_and_two_boxes():
    truth = _truth_two_boxes()
    assert pointing_game(truth.astype(float), truth)  # perfect map
    assert not pointing_game(1.0 - truth, truth)  # inverted map
    outside = np.zeros(truth.shape)
    outside[9, 0] = 5.0
    assert not pointing_game(outside, truth)  # a peak outside every box
    second = np.zeros(truth.shape)
    second[7, 9] = 1.0
    assert pointing_game(second, truth)  # a peak in the second box counts too


def test_pointing_game_ties_use_first_pixel_in_row_major_order():
    truth = _truth_two_boxes()
    assert not pointing_game(np.ones(truth.shape), truth)  # (0, 0) is outside
    tied = np.zeros(truth.shape)
    tied[2, 2] = tied[0, 11] = 1.0  # row 0 comes first: outside
    assert not pointing_game(tied, truth)
    corner = np.zeros(truth.shape, dtype=bool)
    corner[0, 0] = True
    assert pointing_game(np.ones(truth.shape), corner)


# -- pixel AUROC -----------------------------------------------------------------------------------
def test_pixel_auroc_perfect_inverted_and_pooled():
    truth = _truth_two_boxes()
    assert pixel_auroc([truth.astype(float)], [truth]) == 1.0
    assert pixel_auroc([1.0 - truth], [truth]) == 0.0
    assert pixel_auroc([np.ones(truth.shape)], [truth]) == 0.5
    assert pixel_auroc([np.ones(truth.shape)], [np.zeros(truth.shape)]) is None
    # pooled over two images: positives 3 and 1; negatives 1, 2, 0 and 1, 0, 0.
    # 3 beats all six; 1 beats the three zeros and ties the two ones: (6 + 3 + 1) / 12
    maps = [np.array([[3.0, 1.0], [2.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 0.0]])]
    masks = [np.array([[1, 0], [0, 0]], bool), np.array([[0, 1], [0, 0]], bool)]
    assert pixel_auroc(maps, masks) == pytest.approx(10 / 12, abs=1e-12)


def test_pixel_auroc_orders_negative_values_and_zero_signs():
    # positive -1 beats -2 only, loses to -0.0 and 1: 1 of 3
    assert pixel_auroc([np.array([-2.0, -1.0, -0.0, 1.0])], [np.array([0, 1, 0, 0], bool)]) == pytest.approx(1 / 3)
    # -0.0 and +0.0 are the same value: a tie
    assert pixel_auroc([np.array([-0.0, 0.0])], [np.array([1, 0], bool)]) == 0.5


def test_pixel_auroc_histogram_matches_pairwise_count():
    rng = np.random.default_rng(3)
    maps = [rng.normal(size=(20, 30)) * 10 ** rng.uniform(-3, 3) for _ in range(3)]
    masks = [rng.random((20, 30)) < 0.2 for _ in range(3)]
    pos = np.concatenate([m[k] for m, k in zip(maps, masks, strict=True)])
    neg = np.concatenate([m[~k] for m, k in zip(maps, masks, strict=True)])
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert pixel_auroc(maps, masks) == pytest.approx(pairwise, abs=2e-3)
    accumulator = PixelAUROC()  # values 0.1 % apart fall in different bins
    accumulator.update(np.array([1.0, 1.001]), np.array([0, 1], bool))
    assert accumulator.compute() == 1.0


# -- RSNA mAP --------------------------------------------------------------------------------------
BOX = np.array([[0.0, 0.0, 10.0, 10.0]])


def test_rsna_thresholds():
    assert RSNA_IOU_THRESHOLDS == (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)


def test_rsna_map_edge_cases():
    assert rsna_map([(NO_BOXES, NO_SCORES)], [NO_BOXES]) is None  # nothing to score
    assert rsna_map([(BOX, [0.9])], [BOX]) == 1.0
    assert rsna_map([(BOX, [0.9])], [NO_BOXES]) == 0.0  # healthy image with a false positive
    assert rsna_map([(NO_BOXES, NO_SCORES)], [BOX]) == 0.0  # truth without prediction
    # image 1 perfect, image 2 a false positive, image 3 skipped: (1 + 0) / 2
    predictions = [(BOX, [0.9]), (BOX, [0.9]), (NO_BOXES, NO_SCORES)]
    assert rsna_map(predictions, [BOX, NO_BOXES, NO_BOXES]) == 0.5


def test_rsna_map_partial_overlaps():
    # IoU 62.5 / 100 = 0.625 is above 0.40 ... 0.60 (5 of 8 thresholds): 5/8
    assert box_iou([[0, 0, 10, 6.25]], BOX)[0, 0] == pytest.approx(0.625)
    assert rsna_map([([[0, 0, 10, 6.25]], [0.5])], [BOX]) == pytest.approx(5 / 8)
    # IoU 0.3 never matches: 1 FP + 1 FN at every threshold
    assert rsna_map([([[0, 0, 10, 3]], [0.5])], [BOX]) == 0.0
    # two truths, three predictions: exact match, IoU 0.72 (above 7 thresholds), one false positive.
    # thresholds <= 0.70: TP 2, FP 1, FN 0 -> 2/3; at 0.75: TP 1, FP 2, FN 1 -> 1/4
    truths = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 27.2], [50, 50, 60, 60]], float)
    assert rsna_map([(boxes, [0.9, 0.8, 0.7])], [truths]) == pytest.approx((7 * 2 / 3 + 1 / 4) / 8)


def test_rsna_map_duplicates_and_score_order():
    # two predictions on one truth: one TP, one FP -> 1/2 at every threshold
    assert rsna_map([(np.vstack([BOX, BOX]), [0.9, 0.8])], [BOX]) == 0.5
    # the higher-scored prediction takes the truth first even with the lower IoU:
    # scored 0.9 with IoU 0.625 takes it at t < 0.625 and leaves the exact box as a false positive (1/2);
    # at t >= 0.625 it cannot match, the exact box then matches, the other is a FP (1/2)
    boxes = np.array([[0, 0, 10, 6.25], [0, 0, 10, 10]])
    assert rsna_map([(boxes, [0.9, 0.8])], [BOX]) == 0.5
    # scores reversed: the exact box now matches at every threshold and the other is a FP: still 1/2
    assert rsna_map([(boxes, [0.8, 0.9])], [BOX]) == 0.5


# -- FROC ------------------------------------------------------------------------------------------
def test_froc_small_constructed_case():
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    predictions = [
        (np.array([[2, 2, 8, 8], [0, 0, 9, 9]]), np.array([0.9, 0.6])),  # TP (centre 5,5), then a duplicate: FP
        (np.array([[38, 38, 52, 52], [60, 60, 70, 70]]), np.array([0.55, 0.3])),  # larger box, centre in C: TP; FP
        (np.array([[0, 0, 5, 5], [5, 5, 9, 9]]), np.array([0.7, 0.5])),  # healthy image: two FPs
    ]
    truths = [np.array([a]), np.array([b, c]), NO_BOXES]
    result = froc(predictions, truths)
    # scores sorted: 0.9 TP, 0.7 FP, 0.6 FP, 0.55 TP, 0.5 FP, 0.3 FP over 3 images and 3 truths
    # operating points (FP/image, sensitivity): (0, 1/3) (1/3, 1/3) (2/3, 1/3) (2/3, 2/3) (1, 2/3) (4/3, 2/3);
    # the curve keeps the start, each rise and the end
    np.testing.assert_allclose(result["curve"]["fp_per_image"], [0, 0, 2 / 3, 4 / 3])
    np.testing.assert_allclose(result["curve"]["sensitivity"], [0, 1 / 3, 2 / 3, 2 / 3])
    # at 1/8, 1/4, 1/2 FP per image: 1/3; at 1, 2, 4, 8: 2/3
    np.testing.assert_allclose(result["sensitivities"], [1 / 3] * 3 + [2 / 3] * 4)
    assert result["mean_sensitivity"] == pytest.approx(11 / 21)
    assert result["n_truths"] == 3 and result["n_images"] == 3


def test_froc_ties_no_predictions_and_no_truth():
    # a TP and a FP with the same score are one operating point
    predictions = [(np.array([[0, 0, 10, 10]]), [0.5]), (np.array([[0, 0, 10, 10]]), [0.5])]
    result = froc(predictions, [BOX, NO_BOXES])
    np.testing.assert_allclose(result["curve"]["fp_per_image"], [0, 0.5])
    np.testing.assert_allclose(result["curve"]["sensitivity"], [0, 1])
    assert result["sensitivities"][:2] == [0.0, 0.0] and result["sensitivities"][2:] == [1.0] * 5
    empty = froc([(NO_BOXES, NO_SCORES)], [BOX])
    assert empty["sensitivities"] == [0.0] * 7
    assert froc([(BOX, [0.9])], [NO_BOXES]) is None


# -- laterality --------------------------------------------------------------------------------------
def test_truth_side_splits_at_the_column_midpoint():
    even = np.zeros((4, 10), bool)  # halves: cols 0-4 and 5-9
    even[1:3, 0:5] = True
    assert truth_side(even) == "left"
    even[1, 5] = True  # one pixel across the midpoint: both halves
    assert truth_side(even) is None
    assert truth_side(np.fliplr(boxes_to_mask([[0, 0, 5, 4]], (4, 10)))) == "right"
    assert truth_side(np.zeros((4, 10), bool)) is None
    odd = np.zeros((4, 9), bool)  # halves: cols 0-3 and 5-8; col 4 is the middle
    odd[:, 5:] = True
    assert truth_side(odd) == "right"
    odd[0, 4] = True  # on the midline: not in one half
    assert truth_side(odd) is None
    # a box drawn by pixel centres: x2 = 5 of 10 columns stays left, x2 = 5.6 takes column 5 (centre 5.5)
    assert truth_side(boxes_to_mask([[1, 0, 5.0, 2]], (4, 10))) == "left"
    assert truth_side(boxes_to_mask([[1, 0, 5.6, 2]], (4, 10))) is None


def test_laterality_mass_and_peak_pick_the_half_and_tie_at_one_half():
    heat = np.zeros((6, 8))
    heat[2:4, 1:3] = 1.0  # mass and peak on the left
    assert laterality_mass(heat, "left") == 1.0 and laterality_mass(heat, "right") == 0.0
    assert laterality_peak(heat, "left") == 1.0 and laterality_peak(heat, "right") == 0.0
    # more mass on the right, higher peak on the left: the two metrics disagree
    split = np.zeros((6, 8))
    split[0, 0] = 5.0
    split[:, 4:] = 1.0  # 24 on the right against 5 on the left
    assert laterality_mass(split, "right") == 1.0 and laterality_peak(split, "left") == 1.0
    # adding a constant changes neither (the halves have equal pixel counts); negative maps are fine
    assert laterality_mass(split - 10.0, "right") == 1.0


def test_any_left_right_symmetric_map_scores_exactly_one_half():
    rng = np.random.default_rng(0)
    for cols in (64, 65):  # even and odd widths (the middle column of an odd one is left out)
        half = rng.random((48, cols // 2)).astype(np.float32) * 1e3
        middle = rng.random((48, cols % 2)).astype(np.float32)
        symmetric = np.hstack([half, middle, half[:, ::-1]])
        for side in ("left", "right"):
            assert laterality_mass(symmetric, side) == 0.5
            assert laterality_peak(symmetric, side) == 0.5
    with pytest.raises(ValueError, match="side"):
        laterality_mass(np.zeros((2, 2)), "middle")
    with pytest.raises(ValueError, match="no left and right"):
        laterality_peak(np.zeros((3, 1)), "left")


def test_laterality_summary_reports_floors_counts_and_a_bootstrap_interval():
    sides = ["right"] * 6 + ["left"] * 2
    mass = [1, 1, 1, 1, 0, 0.5, 1, 0]
    summary = laterality_summary(mass, [0.5] * 8, sides, resamples=500)
    assert (summary["images"], summary["left"], summary["right"]) == (8, 2, 6)
    assert summary["majority_side"] == "right" and summary["majority_floor"] == 0.75
    assert summary["symmetric_floor"] == 0.5
    assert summary["laterality_mass"] == pytest.approx(5.5 / 8) and summary["laterality_peak"] == 0.5
    low, high = summary["laterality_mass_interval"]
    assert 0 <= low < 5.5 / 8 < high <= 1
    assert summary["laterality_peak_interval"] == [0.5, 0.5]
    empty = laterality_summary([], [], [])
    assert empty["images"] == 0 and empty["laterality_mass"] is None and empty["laterality_mass_interval"] is None
    assert empty["majority_floor"] is None


def test_mean_interval_covers_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small, large = rng.random(20), rng.random(2000)
    low_s, high_s = mean_interval(small, seed=0)
    low_l, high_l = mean_interval(large, seed=0)
    assert low_s < small.mean() < high_s and low_l < large.mean() < high_l
    assert high_l - low_l < (high_s - low_s) / 4
    assert mean_interval([]) is None


def test_detection_auc_interval_is_a_stratified_bootstrap_of_the_rank_auc():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # coarse values: many ties
    low, high = detection_auc_interval(scores, labels, resamples=1000, seed=2)
    assert low < detection_auc(scores, labels) < high and high - low < 0.2
    assert detection_auc_interval([0.1, 0.9, 0.8], [0, 1, 1], resamples=50) == [1.0, 1.0]  # separates in every resample
    assert detection_auc_interval([0.5, 0.5, 0.5], [0, 1, 1], resamples=50) == [0.5, 0.5]  # ties count one half
    assert detection_auc_interval([0.1, 0.2], [1, 1]) is None


def test_brighter_than_mirror_compares_the_truth_with_the_same_place_in_the_other_half() -> None:
    image = np.zeros((4, 10))
    image[1:3, 1:3], image[1:3, 7:9] = 5.0, 2.0  # a patch at columns 1-2 and its mirror at 7-8
    truth = np.zeros((4, 10), bool)
    truth[1:3, 1:3] = True
    assert brighter_than_mirror(image, truth) is True
    assert brighter_than_mirror(image[:, ::-1], truth) is False  # the brighter patch is now the mirror's
    assert brighter_than_mirror(np.where(image > 0, 3.0, 0.0), truth) is False  # as bright as the mirror: not brighter
    symmetric = truth | truth[:, ::-1]
    assert brighter_than_mirror(image, symmetric) is None  # the truth covers its own mirror
    assert brighter_than_mirror(image, np.zeros((4, 10), bool)) is None
    with pytest.raises(ValueError, match="same shape"):
        brighter_than_mirror(image, truth[:, :9])
