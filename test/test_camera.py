"""Stereo camera model from CameraInfo-like inputs; disparity <-> depth <-> points."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stereo_depth_node.calibration import read_middlebury_calib
from stereo_depth_node.camera import StereoCamera
from stereo_depth_node.errors import InputError

FX, FY, CX, CY, BASELINE = 500.0, 480.0, 320.0, 240.0, 0.12


def _infos(right_p3=-FX * BASELINE, cx_right=CX, fx=FX):
    left = {"p": [fx, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0]}
    right = SimpleNamespace(p=[fx, 0, cx_right, right_p3, 0, FY, CY, 0, 0, 0, 1, 0])
    return left, right


def test_model_from_camera_info():
    camera = StereoCamera.from_camera_info(*_infos(cx_right=318.0))
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (FX, FY, CX, CY)
    assert camera.baseline == pytest.approx(BASELINE)
    assert camera.disparity_offset == pytest.approx(2.0)


def test_depth_disparity_round_trip_and_invalid_values():
    camera = StereoCamera.from_camera_info(*_infos())
    disparity = np.array([[30.0, 60.0, 0.0, -3.0, np.nan]], np.float32)
    depth = camera.depth_from_disparity(disparity)
    np.testing.assert_allclose(depth[0, :2], [2.0, 1.0], rtol=1e-6)
    assert np.all(np.isnan(depth[0, 2:]))
    np.testing.assert_allclose(camera.disparity_from_depth(depth)[0, :2], [30.0, 60.0])


def test_pixel_shift_accounts_for_principal_point_offset():
    # Middlebury-style: the right principal point is 10 px further right (doffs = 10).
    camera = StereoCamera.from_camera_info(*_infos(cx_right=CX + 10))
    depth = camera.depth_from_pixel_shift(np.array([[20.0]], np.float32))
    assert depth[0, 0] == pytest.approx(FX * BASELINE / 30.0)


def test_points_by_hand():
    camera = StereoCamera.from_camera_info(*_infos())
    depth = np.full((480, 640), np.nan, np.float32)
    depth[240, 320] = 2.0
    depth[0, 0] = 4.0
    points = camera.points_from_depth(depth)
    assert points.shape == (480, 640, 3)
    np.testing.assert_allclose(points[240, 320], [0.0, 0.0, 2.0])
    np.testing.assert_allclose(points[0, 0], [-320 * 4 / FX, -240 * 4 / FY, 4.0], rtol=1e-6)
    assert np.all(np.isnan(points[1, 1]))


@pytest.mark.parametrize("infos, message", [
    (_infos(right_p3=0.0), r"right camera_info P\[3\] = 0.0 must be negative"),
    (_infos(right_p3=60.0), r"right camera_info P\[3\] = 60.0 must be negative"),
    (_infos(fx=0.0), r"left camera_info P has zero focal length \(P\[0\]=0.0"),
    (_infos(fx=-FX), r"left camera_info P has negative focal length \(P\[0\]=-500.0"),
    (({"p": [FX, 0, CX, -70.0, 0, FY, CY, 0, 0, 0, 1, 0]}, {"p": _infos()[1].p}),
     r"right camera_info P\[3\] = -60.0 must be below left camera_info P\[3\] = -70.0 \(P"),
    (({"p": _infos()[0]["p"]}, {"p": [FX, 0, CX, 0, 0, FY, CY, -60.0, 0, 0, 1, 0]}),
     r"must be negative \(P\[3\] = -fx \* baseline\); without it there is no baseline; its "
     r"P\[7\] \(Ty\) makes the pair a vertical one, which this node does not match"),
    (({"p": [0.0] * 12}, {"p": [0.0] * 12}), "zero focal length"),
    (_infos(right_p3=float("nan")), "right camera_info P contains NaN"),
    (({"p": [1.0] * 9}, {"p": [1.0] * 12}), "left camera_info P has 9 values, expected 12"),
    (({"k": [1.0] * 9}, {"p": [1.0] * 12}), "left camera_info has no P matrix"),
])
def test_bad_calibration_is_named(infos, message):
    with pytest.raises(InputError, match=message):
        StereoCamera.from_camera_info(*infos)


def test_a_left_camera_with_its_own_offset_gives_the_difference_as_baseline():
    # A rig whose P[3] count from a reference other than the left camera: both are offset.
    left = [FX, 0, CX, -FX * 0.05, 0, FY, CY, 0, 0, 0, 1, 0]
    right = [FX, 0, CX, -FX * 0.17, 0, FY, CY, 0, 0, 0, 1, 0]
    camera = StereoCamera.from_projections(left, right)
    assert camera.baseline == pytest.approx(0.12)
    assert camera.depth_from_disparity(np.array([[30.0]], np.float32))[0, 0] == pytest.approx(2.0)


def test_depth_is_the_difference_of_the_p3_over_d_whatever_the_two_focal_lengths():
    # stereo_image_proc's Z = -P_r[3] / d: with P_r[0] = 510 and 0.12 m, 61.2 / 30 px.
    right = [510.0, 0, CX, -510.0 * BASELINE, 0, FY, CY, 0, 0, 0, 1, 0]
    camera = StereoCamera.from_projections(_infos()[0]["p"], right)
    assert camera.fx == FX
    assert camera.depth_from_disparity(np.array([[30.0]], np.float32))[0, 0] == \
        pytest.approx(510.0 * BASELINE / 30.0)


def test_a_rectified_pair_has_no_mismatch_and_every_difference_is_named():
    left, right = _infos()
    assert StereoCamera.pair_mismatch(left["p"], right.p, 63) is None
    # What a driver's rounding or the matchers would not notice: 0.05 % of fx, 0.4 px of cy,
    # Ty giving 0.3 / 60 * 63 = 0.32 px of vertical offset at the largest disparity.
    slightly = list(right.p)
    slightly[0], slightly[6], slightly[7] = FX * 1.0005, CY + 0.4, -0.3
    assert StereoCamera.pair_mismatch(left["p"], slightly, 63) is None
    other = list(right.p)
    other[0], other[5], other[6], other[7] = 510.0, 470.0, CY + 10, -6.0
    assert StereoCamera.pair_mismatch(left["p"], other, 63) == (
        "fx 500 against 510 (P[0]); fy 480 against 470 (P[5]); cy 240 against 250 (P[6]); "
        "P[7] (Ty) 0 against -6, a vertical offset of 6.3 px at the largest disparity searched")


def test_a_baseline_in_the_left_camera_info_alone():
    # A driver that puts Tx = +fx B on the left camera and 0 on the right: the difference holds.
    left = [FX, 0, CX, FX * BASELINE, 0, FY, CY, 0, 0, 0, 1, 0]
    right = [FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0]
    assert StereoCamera.from_projections(left, right).baseline == pytest.approx(BASELINE)
    # The sign ROS gives the right camera, on the left one: the topics are likely swapped.
    left[3] = -FX * BASELINE
    with pytest.raises(InputError, match=r"right camera_info P\[3\] = 0.0 must be below left "
                       r"camera_info P\[3\] = -60.0 \(P\[3\] = -fx \* baseline\); without it "
                       r"there is no baseline; the left camera_info carries the offset instead, "
                       r"where ROS has it on the right camera: are the left and right topics "
                       r"swapped\?"):
        StereoCamera.from_projections(left, right)
    # Swapped topics of a pair with a trace of Ty: no talk of a vertical pair.
    with pytest.raises(InputError) as refused:
        StereoCamera.from_projections([FX, 0, CX, -60.0, 0, FY, CY, 1e-6, 0, 0, 1, 0],
                                      [FX, 0, CX, 0.0, 0, FY, CY, 0, 0, 0, 1, 0])
    assert "vertical" not in str(refused.value)


def test_direct_construction_validates():
    with pytest.raises(InputError, match="baseline must be positive, got -0.1"):
        StereoCamera(fx=FX, fy=FY, cx=CX, cy=CY, cx_right=CX, baseline=-0.1)
    with pytest.raises(InputError, match="non-finite"):
        StereoCamera(fx=np.inf, fy=FY, cx=CX, cy=CY, cx_right=CX, baseline=0.1)


def test_middlebury_calib_file(stereo_eval, tmp_path):
    camera = read_middlebury_calib(stereo_eval / "eth3d/playground/calib.txt")
    assert camera.fx == pytest.approx(542.019) and camera.cy == pytest.approx(255.198)
    assert camera.baseline == pytest.approx(0.0595549)
    (tmp_path / "bad.txt").write_text("cam0=[1 0 0; 0 1 0]\n")
    with pytest.raises(InputError, match="cannot read calibration"):
        read_middlebury_calib(tmp_path / "bad.txt")


@pytest.mark.parametrize("lines, missing", [
    (["cam1=[1 0 0; 0 1 0; 0 0 1]", "baseline=100"], "cam0"),
    (["cam0=[1 0 0; 0 1 0; 0 0 1]", "cam1=[1 0 0; 0 1 0; 0 0 1]"], "baseline"),
    (["cam0=[1 0 0; 0 1 0; 0 0 1]", "cam1=[1 0 0; 0 1 0; 0 0 1]", "baseline=100", "width=8"],
     "height"),
])
def test_a_calib_file_without_a_line_names_the_line(tmp_path, lines, missing):
    # The reason was the bare key of a KeyError: "...baseline in mm): 'cam0'".
    (tmp_path / "calib.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as raised:
        read_middlebury_calib(tmp_path / "calib.txt")
    assert str(raised.value).endswith(f"baseline in mm): no '{missing}=' line")
