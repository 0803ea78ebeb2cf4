"""Rectifying raw views from their calibration: back to the rectified pair within interpolation,
maps computed once per calibration, and clear refusals of what cannot be rectified."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scenes import raw_view
from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.errors import InputError
from stereo_depth_node.rectification import (Rectifier, example_camera_models,
                                            raw_to_rectified_points)

WIDTH, HEIGHT = 320, 240


@pytest.mark.parametrize("distortion_model", ["plumb_bob", "rational_polynomial", "equidistant"])
def test_raw_views_rectify_back_to_the_rectified_pair(distortion_model):
    left, right = render_plane_pair(HEIGHT, WIDTH, 30.0, seed=1)
    left_model, right_model = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12,
                                                      distortion_model)
    rectifier = Rectifier()
    for name, rectified, model in (("left", left, left_model), ("right", right, right_model)):
        raw = raw_view(rectified, model)
        assert np.abs(raw.astype(int) - rectified).mean() > 10  # the distortion is real
        back = rectifier.rectify(name, raw, model)
        inner = (slice(30, HEIGHT - 30), slice(40, WIDTH - 40))
        error = np.abs(back[inner].astype(int) - rectified[inner].astype(int))
        assert error.mean() < 3.0 and np.percentile(error, 99) < 20


def test_points_map_through_the_model_by_hand():
    # No distortion, identity R, K = P: a raw pixel stays where it is.
    left_model, _ = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12, "plumb_bob")
    p = left_model.p
    plain = dataclasses.replace(left_model, d=(0.0,) * 5, r=(1, 0, 0, 0, 1, 0, 0, 0, 1),
                                k=(p[0], 0.0, p[2], 0.0, p[5], p[6], 0.0, 0.0, 1.0))
    points = np.array([[10.0, 20.0], [200.5, 100.25]])
    np.testing.assert_allclose(raw_to_rectified_points(plain, points), points, atol=1e-9)
    # Focal 480 -> 500 about the same centre scales offsets from the centre by 500 / 480.
    scaled = dataclasses.replace(plain, k=(480.0, 0.0, p[2], 0.0, 480.0, p[6], 0.0, 0.0, 1.0))
    centre = np.array([p[2], p[6]])
    np.testing.assert_allclose(raw_to_rectified_points(scaled, points),
                               centre + (points - centre) * 500 / 480, atol=1e-9)


def test_maps_are_computed_once_per_calibration():
    left_model, right_model = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12, "plumb_bob")
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rectifier = Rectifier()
    for _ in range(3):
        rectifier.rectify("left", image, left_model)
        rectifier.rectify("right", image, right_model)
    assert rectifier.maps_computed == 2
    recalibrated = dataclasses.replace(left_model, d=(-0.1, 0.0, 0.0, 0.0, 0.0))
    rectifier.rectify("left", image, recalibrated)
    rectifier.rectify("left", image, recalibrated)
    assert rectifier.maps_computed == 3


@pytest.mark.parametrize("change, message", [
    ({"binning_x": 2}, "left/camera_info binning_x = 2: binned images are not supported"),
    ({"binning_y": 4}, "left/camera_info binning_y = 4: binned images are not supported"),
    ({"roi": (10, 0, 100, 240)}, "left/camera_info roi = (x_offset 10, y_offset 0, width 100, "
                                 "height 240): a region of interest is not supported"),
    ({"distortion_model": "kannala"}, "left/camera_info distortion_model 'kannala' is not"),
    ({"d": (0.1, 0.2, 0.3)}, "left/camera_info D has 3 coefficients; plumb_bob takes 4 or 5 or 8"),
    ({"k": (0.0,) * 9}, "left/camera_info has zero focal length"),
])
def test_what_cannot_be_rectified_is_named(change, message):
    left_model, _ = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12, "plumb_bob")
    with pytest.raises(InputError) as error:
        Rectifier().rectify("left/camera_info", np.zeros((HEIGHT, WIDTH), np.uint8),
                            dataclasses.replace(left_model, **change))
    assert message in str(error.value)


def test_full_image_roi_and_binning_one_are_accepted():
    left_model, _ = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12, "plumb_bob")
    model = dataclasses.replace(left_model, binning_x=1, binning_y=1, roi=(0, 0, WIDTH, HEIGHT))
    assert Rectifier().rectify("left", np.zeros((HEIGHT, WIDTH), np.uint8), model).shape == \
        (HEIGHT, WIDTH)


@pytest.mark.parametrize("channels", [3, 1])
def test_torch_remap_matches_opencv(channels):
    # The GPU path is grid_sample with the same maps; run here on the CPU device.
    left, _ = render_plane_pair(HEIGHT, WIDTH, 30.0, seed=4)
    image = left if channels == 3 else (left[:, :, 1].astype(np.uint16) * 257)
    left_model, _ = example_camera_models(WIDTH, HEIGHT, 500.0, 0.12, "equidistant")
    raw = raw_view(image, left_model)
    opencv = Rectifier().rectify("left", raw, left_model)
    on_torch = Rectifier("cpu").rectify("left", raw, left_model)
    assert on_torch.dtype == image.dtype and on_torch.shape == image.shape
    # OpenCV interpolates with 1/32 px fixed-point weights: a few levels apart at most.
    scale = 1 if channels == 3 else 257
    difference = np.abs(on_torch.astype(int) - opencv.astype(int)) / scale
    assert difference.mean() < 0.6 and np.percentile(difference, 99.9) <= 4
