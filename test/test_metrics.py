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
