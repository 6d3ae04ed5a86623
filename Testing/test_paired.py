"""Paired comparison of two methods on the same images (PilletGANLib.evaluation.paired)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from PilletGANLib.errors import DataError
from PilletGANLib.evaluation import paired_comparison, read_per_image
from PilletGANLib.evaluation.accumulator import ImageScores
from PilletGANLib.evaluation.paired import mcnemar_exact_p
from PilletGANLib.evaluation.report import PerImageCSV


def rows(scores: list[float], hits: list[bool | None], dice_top15: list[float | None]) -> list[ImageScores]:
    """Rows for images ``img0, img1, ...``: disease where a hit is given (localized), healthy where it is None."""
    return [ImageScores(key=f"img{i}", image=f"/data/img{i}.png", label="healthy" if hit is None else "disease",
                        score=score, pointing_hit=hit, dice=None, dice_top15=d, iou=None, n_boxes_pred=0,
                        n_boxes_true=0 if hit is None else 1)
            for i, (score, hit, d) in enumerate(zip(scores, hits, dice_top15, strict=True))]


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail() -> None:
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 2**10)
    assert mcnemar_exact_p(0, 10) == mcnemar_exact_p(10, 0)
    assert mcnemar_exact_p(7, 3) == pytest.approx(2 * sum(math.comb(10, k) for k in range(4)) / 2**10)
    assert mcnemar_exact_p(5, 5) == 1.0 and mcnemar_exact_p(0, 0) == 1.0


@pytest.mark.slow
def test_a_better_method_gets_a_positive_interval_and_a_small_p() -> None:
    rng = np.random.default_rng(0)
    n_disease, n_healthy = 60, 60
    hits_a = [True] * 50 + [False] * 10
    hits_b = [True] * 20 + [False] * 40  # B hits a subset of A's images: 30 images only A hits, none only B
    a = rows(list(rng.uniform(1, 2, n_disease)) + list(rng.uniform(0, 1, n_healthy)),  # separates perfectly
             hits_a + [None] * n_healthy, [0.6] * n_disease + [None] * n_healthy)
    b = rows(list(rng.uniform(0, 1, n_disease + n_healthy)), hits_b + [None] * n_healthy,
             [0.4] * n_disease + [None] * n_healthy)
    result = paired_comparison(a, b, resamples=500)
    assert result["images"] == 120 and result["localized"] == 60
    auc = result["detection_auc"]
    assert auc["a"] == 1.0 and auc["difference"] == pytest.approx(1.0 - auc["b"])
    assert 0 < auc["interval"][0] <= auc["difference"] <= auc["interval"][1]
    pointing = result["pointing_game"]
    assert (pointing["a"], pointing["b"]) == (pytest.approx(50 / 60), pytest.approx(20 / 60))
    assert (pointing["a_only"], pointing["b_only"]) == (30, 0)
    assert pointing["mcnemar_p"] == pytest.approx(2 / 2**30)
    assert pointing["interval"][0] > 0
    assert result["dice_top15"]["difference"] == pytest.approx(0.2)
    assert result["dice"] is None  # no mask Dice in these rows


def test_a_method_against_itself_differs_by_nothing() -> None:
    a = rows([0.9, 0.2, 0.7, 0.1], [True, False, None, None], [0.5, 0.1, None, None])
    result = paired_comparison(a, list(reversed(a)), resamples=100)
    assert result["detection_auc"]["difference"] == 0 and result["detection_auc"]["interval"] == [0.0, 0.0]
    assert result["pointing_game"]["mcnemar_p"] == 1.0 and result["pointing_game"]["interval"] == [0.0, 0.0]
    assert result["dice_top15"]["difference"] == 0


def test_one_class_gives_no_auc_but_still_compares_the_maps() -> None:
    a = rows([0.9, 0.2], [True, True], [0.5, 0.4])
    b = rows([0.3, 0.8], [False, True], [0.3, 0.4])
    result = paired_comparison(a, b, resamples=50)
    assert result["detection_auc"] is None
    assert (result["pointing_game"]["a_only"], result["pointing_game"]["b_only"]) == (1, 0)


def test_tables_of_different_images_or_labels_are_refused() -> None:
    a = rows([0.9, 0.2], [True, None], [0.5, None])
    with pytest.raises(DataError, match="different images"):
        paired_comparison(a, a[:1])
    relabelled = rows([0.9, 0.2], [None, None], [None, None])
    with pytest.raises(DataError, match="different labels"):
        paired_comparison(a, relabelled)
    with pytest.raises(DataError, match="twice"):
        paired_comparison(a + a[:1], a)


def test_per_image_csv_reads_back_as_written(tmp_path: Path) -> None:
    written = rows([0.9, 0.25, 0.5], [True, False, None], [0.5, 0.125, None])
    written[0].dice, written[0].iou = 0.75, 0.6
    written[1].localization_only, written[1].truth_side = True, "left"
    written[1].laterality_mass, written[1].laterality_peak = 0.5, 1.0
    with PerImageCSV(tmp_path / "per_image.csv") as table:
        for row in written:
            table.write(row)
    assert read_per_image(tmp_path / "per_image.csv") == written
    (tmp_path / "other.csv").write_text("key,score\nimg0,0.5\n")
    with pytest.raises(DataError, match="not a per-image table"):
        read_per_image(tmp_path / "other.csv")
    with pytest.raises(DataError, match="cannot read"):
        read_per_image(tmp_path / "missing.csv")


def test_compare_command_reads_two_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PilletGANLib.cli import main

    for name, hits in (("a", [True, True, None]), ("b", [False, True, None])):
        (tmp_path / name).mkdir()
        with PerImageCSV(tmp_path / name / "per_image.csv") as table:
            for row in rows([0.9, 0.8, 0.1], hits, [0.5, 0.4, None]):
                table.write(row)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b" / "per_image.csv"), "--resamples", "50",
                 "--out", str(tmp_path / "new" / "comparison.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "new" / "comparison.json").read_text())
    assert (printed["pointing_game"]["a_only"], printed["pointing_game"]["b_only"]) == (1, 0)
    assert printed["detection_auc"]["difference"] == 0  # same scores
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "cannot read the per-image table" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--confidence", "95"]) == 2
    assert "confidence must be between 0 and 1" in capsys.readouterr().err


def test_laterality_is_compared_over_unilateral_images_with_mcnemar() -> None:
    a = rows([0.9, 0.8, 0.7, 0.6, 0.1], [True, True, True, False, None], [0.5, 0.5, 0.5, 0.5, None])
    b = rows([0.9, 0.8, 0.7, 0.6, 0.1], [True, True, True, False, None], [0.5, 0.5, 0.5, 0.5, None])
    for row_a, row_b, side, mass_a, mass_b in zip(a, b, ["left", "right", "left", None], [1.0, 1.0, 0.5],
                                                  [0.0, 1.0, 0.5], strict=False):
        row_a.truth_side = row_b.truth_side = side
        row_a.laterality_mass, row_b.laterality_mass = mass_a, mass_b
        row_a.laterality_peak, row_b.laterality_peak = mass_a, 0.5
    result = paired_comparison(a, b, resamples=200)
    assert result["lateral"] == 3 and result["localized"] == 4
    mass = result["laterality_mass"]
    assert (mass["a"], mass["b"]) == (pytest.approx(2.5 / 3), pytest.approx(1.5 / 3))
    assert (mass["a_only"], mass["b_only"], mass["mcnemar_p"]) == (1, 0, 1.0)
    peak = result["laterality_peak"]  # A 1, 1, 0.5 against B's constant 0.5: two images where A scores higher
    assert (peak["a_only"], peak["b_only"]) == (2, 0) and peak["difference"] == pytest.approx(1 / 3)
    b[0].truth_side = "right"
    with pytest.raises(DataError, match="different truth"):
        paired_comparison(a, b)


def test_localization_only_images_stay_out_of_the_paired_auc() -> None:
    a = rows([0.9, 0.2, 0.1, 0.05], [True, None, None, True], [0.5, None, None, 0.5])
    b = rows([0.9, 0.2, 0.1, 0.95], [True, None, None, False], [0.5, None, None, 0.1])
    a[3].localization_only = b[3].localization_only = True  # a low and a high score on a loc.-only image
    result = paired_comparison(a, b, resamples=50)
    assert result["detection_auc"]["a"] == result["detection_auc"]["b"] == 1.0  # image 3 does not count
    assert result["pointing_game"]["a_only"] == 1  # but its map does
    b[3].localization_only = False
    with pytest.raises(DataError, match="different labels"):
        paired_comparison(a, b)


def test_per_image_tables_of_older_reports_still_read(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_text("key,image,label,score,pointing_hit,dice,dice_top15,iou,n_boxes_pred,n_boxes_true\n"
                                      "img0,/x/img0.png,disease,0.5,1,,0.25,,0,1\n")
    (row,) = read_per_image(tmp_path / "old.csv")
    assert row.pointing_hit is True and row.localization_only is False and row.truth_side is None
    assert row.laterality_mass is None


@pytest.mark.parametrize(("cells", "message"), [
    ({"score": "nan"}, "line 3: 'score' is nan, not a finite number"),  # sklearn's AUC raised ValueError
    ({"score": "1e400"}, "'score' is 1e400, not a finite number"),
    ({"dice_top15": "2"}, "'dice_top15' is 2; expected a value within"),  # was averaged as given
    ({"laterality_mass": "-1"}, "'laterality_mass' is -1; expected a value within"),
    ({"pointing_hit": "0.5"}, "'pointing_hit' is 0.5; expected 0 or 1"),
    ({"n_boxes_true": "1.5"}, "'n_boxes_true' is 1.5, not a count"),
    ({"truth_side": "both"}, "'truth_side' is 'both'"),
    ({"key": ""}, "'key' is empty"),
])
def test_per_image_cells_no_report_holds_are_refused_by_line(tmp_path: Path, cells: dict[str, str],
                                                              message: str) -> None:
    written = rows([0.9, 0.25], [True, None], [0.5, None])
    written[0].truth_side, written[0].laterality_mass = "left", 1.0
    with PerImageCSV(tmp_path / "per_image.csv") as table:
        for row in written:
            table.write(row)
    header, first, second = (tmp_path / "per_image.csv").read_text().splitlines()
    columns = header.split(",")
    values = first.split(",")
    for column, value in cells.items():
        values[columns.index(column)] = value
    (tmp_path / "edited.csv").write_text("\n".join([header, second, ",".join(values)]) + "\n")
    with pytest.raises(DataError, match=rf"edited\.csv: .*{re.escape(message)}"):
        read_per_image(tmp_path / "edited.csv")


def test_per_image_tables_in_other_encodings_are_read_or_refused(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 with a byte-order mark is read; Latin-1 ended in a UnicodeDecodeError traceback."""
    text = "key,image,label,score,pointing_hit,dice,dice_top15,iou,n_boxes_pred,n_boxes_true\n" \
           "img0,/x/imgé.png,disease,0.5,1,,0.25,,0,1\n"
    (tmp_path / "bom.csv").write_bytes(text.encode("utf-8-sig"))
    assert read_per_image(tmp_path / "bom.csv")[0].key == "img0"
    (tmp_path / "latin1.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not a per-image table .*UnicodeDecodeError"):
        read_per_image(tmp_path / "latin1.csv")
    (tmp_path / "empty.csv").write_text(text.splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"empty\.csv: the per-image table has no rows"):
        read_per_image(tmp_path / "empty.csv")
