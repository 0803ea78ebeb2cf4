"""What the launch files work out without `launch`: the node's ready line in its output, RViz's
image remap, and the namespace and frame of a bag's left camera (real rosbag2 files)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from stereo_depth_node.camera import StereoCamera
from stereo_depth_node.ros.bag import BagWriter, make_bag
from stereo_depth_node.ros.launch_support import (BagCamera, StartupWatch, bag_camera,
                                                   check_params_file, launch_bool,
                                                   package_installed, parameter_overrides,
                                                   rviz_image_remaps)
from stereo_depth_node.ros.messages import stereo_messages

CAMERA = StereoCamera(fx=500.0, fy=500.0, cx=31.5, cy=23.5, cx_right=31.5, baseline=0.12)
PAIR = (np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8))


def test_startup_watch_fires_once_even_when_a_chunk_boundary_splits_the_line():
    watch = StartupWatch()
    assert not watch.saw_ready(b"[INFO] [1.0] [stereo_depth_node]: no trained weights ...\n")
    assert not watch.saw_ready(b"[INFO] [2.0] [stereo_depth_node]: ready: mo")
    assert watch.saw_ready(b"del psmnet_dws on cpu, max disparity 64, ...\n")
    assert not watch.saw_ready(b"[INFO] [3.0] [stereo_depth_node]: ready: model sgbm\n")
    assert watch.ready


def test_node_logs_the_line_the_watch_waits_for(ros_context, tmp_path):
    from ros_harness import NodeProcess
    process = NodeProcess(tmp_path / "node.log", {"model": "sgbm"}, "/launch_ready")
    try:
        process.wait_ready()
        assert StartupWatch().saw_ready(process.log().encode())
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize("left_image, rectify, remaps", [
    ("", False, []),
    ("/cam/left/image_rect", False, [("left/image_rect", "/cam/left/image_rect")]),
    ("", True, [("left/image_rect", "left/image_raw")]),
    ("/cam/left/image_raw", True, [("left/image_rect", "/cam/left/image_raw")]),
])
def test_rviz_shows_the_image_the_node_reads(left_image, rectify, remaps):
    assert rviz_image_remaps(left_image, rectify) == remaps


def test_bag_made_by_the_bag_tool_gives_its_namespace_and_frame(tmp_path):
    make_bag(tmp_path / "bag", [PAIR], CAMERA, namespace="/robot/stereo", frame_id="cam_optical")
    assert bag_camera(str(tmp_path / "bag")) == BagCamera("/robot/stereo", "cam_optical", "64x48")
    # With the left camera_info named, its frame; the namespace only where the layout gives one.
    assert bag_camera(str(tmp_path / "bag"), "/robot/stereo/left/camera_info") == \
        BagCamera("/robot/stereo", "cam_optical", "64x48")


def test_the_left_camera_info_is_read_even_when_the_right_one_comes_first(tmp_path):
    messages = stereo_messages(*PAIR, CAMERA, 10**9, "left_optical")
    messages["right/camera_info"].header.frame_id = "right_optical"
    messages["left/camera_info"].width = messages["left/camera_info"].height = 0  # unset size
    with BagWriter(tmp_path / "bag") as writer:
        for topic in ("right/camera_info", "left/camera_info", "left/image_rect",
                      "right/image_rect"):
            writer.write(f"/{topic}", messages[topic], 10**9)
    assert bag_camera(str(tmp_path / "bag")) == BagCamera("", "left_optical")


def test_a_binned_cameras_warm_up_size_is_its_images_size(tmp_path):
    # Replay warmed up at the sensor's full width x height, so the first real frames of a
    # binned or cropped camera paid for cuDNN's tuning (or compiling) again.
    messages = stereo_messages(*PAIR, CAMERA, 10**9, "left_optical")
    info = messages["left/camera_info"]
    info.width, info.height, info.binning_x, info.binning_y = 128, 96, 2, 2
    with BagWriter(tmp_path / "bag") as writer:
        for topic, message in messages.items():
            writer.write(f"/cam/{topic}", message, 10**9)
    assert bag_camera(str(tmp_path / "bag")) == BagCamera("/cam", "left_optical", "64x48")


def test_an_unreadable_bag_is_said_and_replay_goes_on(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n")
    assert bag_camera(str(tmp_path / "broken")) == BagCamera("", "")
    assert "could not read the camera_info in" in capsys.readouterr().err
    assert bag_camera(str(tmp_path / "missing")) == BagCamera("", "")


def test_without_rosbags_replay_says_what_to_give_by_hand(tmp_path, capsys, monkeypatch):
    # It ran the node outside the bag's namespace without a word, so nothing was matched.
    make_bag(tmp_path / "bag", [PAIR], CAMERA, namespace="/robot/stereo", frame_id="cam_optical")
    monkeypatch.setitem(sys.modules, "rosbags.highlevel", None)  # as if not installed
    assert bag_camera(str(tmp_path / "bag")) == BagCamera("", "")
    assert capsys.readouterr().err == (
        f"replay.launch.py: rosbags is not installed (pip install rosbags), so the namespace, "
        f"frame and size of {tmp_path / 'bag'}'s camera are not read; give namespace:=, "
        f"fixed_frame:= and warmup_size:= yourself\n")
    monkeypatch.undo()
    assert bag_camera(str(tmp_path / "bag")).namespace == "/robot/stereo"


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True),
                                         ("yes", True), ("on", True), ("false", False),
                                         ("0", False), ("no", False), ("OFF", False)])
def test_boolean_launch_arguments_read_as_launch_and_ros_yaml_read_them(text, value):
    assert launch_bool("rectify", text) is value


def test_launch_arguments_of_the_wrong_type_are_refused_naming_them():
    kinds = {"rectify": bool, "max_disparity": int, "weights": str, "device": str}
    assert parameter_overrides({"rectify": "1", "max_disparity": "128", "weights": "2024",
                                "device": ""}, kinds) == {
        "rectify": True, "max_disparity": 128, "weights": "2024"}  # '' keeps the file's value
    # A typo used to turn into false, overriding a true in the parameters file.
    with pytest.raises(ValueError, match=r"launch argument rectify:='ture' is not a boolean; "
                                         r"give one of true, 1, yes, on, false, 0, no, off"):
        parameter_overrides({"rectify": "ture"}, kinds)
    with pytest.raises(ValueError, match=r"max_disparity:='192.0' is not a whole number"):
        parameter_overrides({"max_disparity": "192.0"}, kinds)


def test_a_parameters_file_that_is_not_there_is_refused(tmp_path):
    (tmp_path / "mine.yaml").write_text("/**:\n  ros__parameters: {}\n")
    check_params_file(str(tmp_path / "mine.yaml"))
    with pytest.raises(FileNotFoundError, match="params_file:='.*mine.yml' is not a file"):
        check_params_file(str(tmp_path / "mine.yml"))


def test_rviz2_is_looked_up_in_the_ament_index(tmp_path, monkeypatch):
    prefix = tmp_path / "install"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages"
    marker.mkdir(parents=True)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert not package_installed("rviz2")
    (marker / "rviz2").write_text("")
    (prefix / "share" / "rviz2").mkdir()
    assert package_installed("rviz2")
