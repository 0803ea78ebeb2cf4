"""The frame pipeline after matching (confidence threshold, disparity offset, depth, depth limits,
points, packed colour), checked pixel by pixel against the formulas on a real network's output."""
from __future__ import annotations

import numpy as np
import pytest

from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.estimator import StereoEstimator
from stereo_depth_node.images import to_uint8
from stereo_depth_node.pipeline import FrameOutput, OutputSettings, process_frame

FX, FY, BASELINE, CX_SHIFT = 400.0, 410.0, 0.2, 2.0
HEIGHT, WIDTH = 64, 96


def projections(width: int, height: int, baseline: float = BASELINE):
    """The right principal point CX_SHIFT px left of the left one: disparity = shift - CX_SHIFT."""
    cx, cy = (width - 1) / 2 + 0.3, (height - 1) / 2 - 0.2
    left = [FX, 0.0, cx, 0.0, 0.0, FY, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    right = [FX, 0.0, cx - CX_SHIFT, -FX * baseline, 0.0, FY, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return left, right


def colour_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured plane 6 px away, with three different channels so that colour packing shows."""
    left, right = render_plane_pair(height, width, 6.0, seed=4)
    return tuple(np.dstack([view[..., 0], 255 - view[..., 1], view[..., 2] // 2])
                 for view in (left, right))


def expected_disparity(shift: np.ndarray, confidence: np.ndarray, settings: OutputSettings
                       ) -> np.ndarray:
    kept = confidence >= settings.confidence_threshold
    return np.where(kept, shift, np.nan).astype(np.float32) - np.float32(CX_SHIFT)


def assert_frame_follows_the_formulas(output: FrameOutput, left_rgb: np.ndarray,
                                      settings: OutputSettings) -> None:
    """Depth, its limits, points and colour as the camera's formulas give them from the frame's
    disparity, in the float32 arithmetic the node uses."""
    left_p, _ = projections(*output.disparity.shape[::-1])
    cx, cy = np.float32(left_p[2]), np.float32(left_p[6])
    disparity = output.disparity
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(FX * BASELINE) / disparity
    depth = np.where(disparity > 0, depth, np.nan)
    with np.errstate(invalid="ignore"):
        depth[(depth < settings.min_depth) | (depth > settings.max_depth)] = np.nan
    np.testing.assert_allclose(output.depth, depth, rtol=2e-7)
    height, width = depth.shape
    u = np.arange(width, dtype=np.float32)[None, :]
    v = np.arange(height, dtype=np.float32)[:, None]
    np.testing.assert_allclose(output.points[..., 0], (u - cx) * depth / np.float32(FX),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(output.points[..., 1], (v - cy) * depth / np.float32(FY),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(output.points[..., 2], output.depth)
    rgb = left_rgb.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    assert output.has_color
    np.testing.assert_array_equal(output.cloud[..., 3].view(np.uint32), packed)


@pytest.fixture(scope="module")
def estimator():
    return StereoEstimator("psmnet_dws", "shipped", 16, "cpu", notify=lambda _text: None)


@pytest.fixture(scope="module")
def pair():
    return colour_pair(HEIGHT, WIDTH)


def test_every_map_follows_the_formulas(estimator, pair):
    matched = estimator.estimate(*pair)
    settings = OutputSettings(confidence_threshold=0.0, min_depth=0.0, max_depth=100.0)
    output = process_frame(estimator, *pair, *projections(WIDTH, HEIGHT), settings)
    np.testing.assert_array_equal(output.disparity, expected_disparity(
        matched.disparity, matched.confidence, settings))
    np.testing.assert_array_equal(output.confidence, matched.confidence)
    assert np.isfinite(output.depth).mean() > 0.9  # the formulas are checked on real depths
    assert_frame_follows_the_formulas(output, pair[0], settings)


def test_threshold_and_depth_limits_make_nan(estimator, pair):
    matched = estimator.estimate(*pair)
    # The plane is at about 80 / (6 - 2) = 20 m: limits around it cut part of it.
    settings = OutputSettings(confidence_threshold=float(np.median(matched.confidence)),
                              min_depth=19.0, max_depth=21.0)
    output = process_frame(estimator, *pair, *projections(WIDTH, HEIGHT), settings)
    disparity = expected_disparity(matched.disparity, matched.confidence, settings)
    np.testing.assert_array_equal(output.disparity, disparity)
    assert 0.4 < np.isnan(disparity).mean() < 0.6  # the median: half below the threshold
    assert 0.3 < np.isnan(output.depth).mean() < 0.99
    assert_frame_follows_the_formulas(output, pair[0], settings)


def test_outputs_not_wanted_are_not_made(estimator, pair):
    calibration = projections(WIDTH, HEIGHT)
    grey = process_frame(estimator, *pair, *calibration, OutputSettings(use_color=False))
    assert not grey.has_color and not grey.cloud[..., 3].view(np.uint32).any()
    depth_only = process_frame(estimator, *pair, *calibration, OutputSettings(want_points=False))
    assert depth_only.cloud is None and depth_only.points is None
    assert depth_only.depth.shape == (HEIGHT, WIDTH)
    neither = process_frame(estimator, *pair, *calibration,
                            OutputSettings(want_points=False, want_depth=False))
    assert neither.depth is None and neither.cloud is None
    assert neither.disparity.shape == neither.confidence.shape == (HEIGHT, WIDTH)


def test_a_calibration_without_baseline_gives_disparity_and_says_why(estimator, pair):
    shift = estimator.estimate(*pair).disparity
    output = process_frame(estimator, *pair, *projections(WIDTH, HEIGHT, baseline=0.0),
                           OutputSettings())
    assert output.camera is None and "without it there is no baseline" in output.camera_error
    assert output.depth is None and output.cloud is None
    np.testing.assert_array_equal(output.disparity, shift)  # no camera, no offset


def test_a_12_bit_streams_dim_frame_keeps_the_cameras_shift():
    # 12-bit colour in uint16: after a frame that used all 12 bits, one whose brightest pixel is
    # below 2**10 is widened by the camera's 16x, as matched and as the points' colours show it,
    # not brightened 64x by its own bits (which made the cloud's colours jump with the scene).
    sgbm = StereoEstimator("sgbm", max_disparity=16)
    bright = [(view.astype(np.uint32) * 4095 // 255).astype(np.uint16)
              for view in colour_pair(HEIGHT, WIDTH)]
    dim = [view // 4 for view in bright]
    assert max(int(v.max()) for v in bright).bit_length() == 12
    assert max(int(v.max()) for v in dim).bit_length() == 10
    process_frame(sgbm, *bright, *projections(WIDTH, HEIGHT), OutputSettings())
    output = process_frame(sgbm, *dim, *projections(WIDTH, HEIGHT), OutputSettings())
    rgb = to_uint8(dim[0] << 4).astype(np.uint32)
    assert not np.array_equal(rgb, to_uint8(dim[0] << 6))
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    np.testing.assert_array_equal(output.cloud[..., 3].view(np.uint32), packed)
    assert sgbm.significant_bits.bits == 12
    # A new stream (estimator) learns its own: this frame alone uses 10 bits.
    alone = process_frame(StereoEstimator("sgbm", max_disparity=16), *dim,
                          *projections(WIDTH, HEIGHT), OutputSettings())
    rgb = to_uint8(dim[0] << 6).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    np.testing.assert_array_equal(alone.cloud[..., 3].view(np.uint32), packed)
