"""Metrics against values computed by hand on tiny arrays."""
from __future__ import annotations

import numpy as np
import pytest

from stereo_depth_node.metrics import disparity_metrics, fill_holes_with_background


def test_hand_computed_metrics():
    truth = np.array([[10.0, 20.0, 40.0, 100.0]], np.float32)
    estimate = np.array([[10.5, 22.5, 44.0, 104.0]], np.float32)
    # errors 0.5, 2.5, 4.0, 4.0; D1 needs > 3 px and > 5 %: 4 > 2.0 (40) yes, 4 > 5.0 (100) no
    m = disparity_metrics(estimate, truth)["all"]
    assert m["pixels"] == 4
    assert m["epe"] == pytest.approx((0.5 + 2.5 + 4 + 4) / 4)
    assert m["bad1"] == 75.0 and m["bad2"] == 75.0 and m["bad3"] == 50.0
    assert m["d1"] == 25.0 and m["density"] == 100.0


def test_holes_count_as_errors_and_are_filled_with_background_for_epe():
    truth = np.array([[10.0, 10.0, 30.0, 30.0]], np.float32)
    estimate = np.array([[10.0, np.nan, 30.0, 30.0]], np.float32)
    m = disparity_metrics(estimate, truth)["all"]
    assert m["density"] == 75.0
    assert m["bad3"] == 0.0 + 25.0  # the hole
    assert m["epe"] == pytest.approx(0.0)  # filled with min(10, 30) = 10 = truth
    filled = fill_holes_with_background(np.array([[np.nan, 8.0, np.nan, np.nan, 3.0, np.nan]]))
    assert filled.tolist() == [[8.0, 8.0, 3.0, 3.0, 3.0, 3.0]]


def test_occluded_and_non_occluded_split():
    truth = np.array([[5.0, 5.0, 5.0, np.nan]], np.float32)
    estimate = np.array([[5.0, 9.0, 5.0, 1.0]], np.float32)
    occlusion = np.array([[False, True, False, True]])
    m = disparity_metrics(estimate, truth, occlusion)
    assert m["noc"]["pixels"] == 2 and m["noc"]["bad3"] == 0.0
    assert m["occ"]["pixels"] == 1 and m["occ"]["bad3"] == 100.0 and m["occ"]["epe"] == 4.0
    assert m["all"]["pixels"] == 3  # NaN ground truth does not count


def test_ground_truth_above_max_disparity_is_excluded_and_counted():
    truth = np.array([[10.0, 70.0, 80.0, 20.0]], np.float32)
    estimate = np.array([[10.0, 10.0, 10.0, 20.0]], np.float32)
    m = disparity_metrics(estimate, truth, max_disparity=64)
    assert m["excluded_above_max"] == 2
    assert m["all"]["pixels"] == 2 and m["all"]["epe"] == 0.0


def test_background_fill_on_hand_made_rows():
    nan, inf = np.nan, np.inf
    holes = np.array([[5, nan, nan, 9, 9],     # inside: the smaller neighbour, 5
                      [9, nan, 6, nan, 7],     # each hole between its own neighbours: 6 and 6
                      [nan, nan, 2, 7, 7],     # left border: only a right neighbour, 2
                      [4, nan, inf, nan, nan],  # inf is a hole too; right border: 4
                      [nan, nan, nan, nan, nan],  # nothing to fill from
                      [1, 2, 3, 4, 5]], np.float32)
    expected = np.array([[5, 5, 5, 9, 9],
                         [9, 6, 6, 6, 7],
                         [2, 2, 2, 7, 7],
                         [4, 4, 4, 4, 4],
                         [nan, nan, nan, nan, nan],
                         [1, 2, 3, 4, 5]], np.float32)
    before = holes.copy()
    np.testing.assert_array_equal(fill_holes_with_background(holes), expected)
    np.testing.assert_array_equal(holes, before)  # the input is left as it was


def test_epe_of_a_row_without_answers_counts_the_full_disparity():
    truth = np.array([[10.0, 10.0], [4.0, 6.0]], np.float32)
    estimate = np.array([[10.0, 10.0], [np.nan, np.nan]], np.float32)
    m = disparity_metrics(estimate, truth)["all"]
    assert m["epe"] == pytest.approx((0 + 0 + 4 + 6) / 4) and m["density"] == 50.0
