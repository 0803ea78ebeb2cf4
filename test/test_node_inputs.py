"""Real robot inputs over real DDS: compressed image topics and raw cameras the node rectifies
itself. A textured plane at 2.000 m, rendered through lens distortion and a rectifying rotation,
must come out at 2.000 m; every malformed compressed message is named and the next set still
works."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray

from ros_harness import NodesUnderTest, as_remapped, camera_for, raw_stereo_set, stereo_set
from scenes import raw_view
from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.estimator import StereoEstimator
from stereo_depth_node.rectification import example_camera_models
from stereo_depth_node.ros.frame import InputTopics
from stereo_depth_node.ros.messages import stereo_messages
from test_node_sgbm import Frames, as_array, cloud_array

WIDTH, HEIGHT, FX, BASELINE, DISTANCE = 320, 240, 500.0, 0.12, 2.0
DISPARITY = FX * BASELINE / DISTANCE  # 30 px
FRAME = "left_camera_optical_frame"


@pytest.fixture(scope="module")
def plane():
    return render_plane_pair(HEIGHT, WIDTH, DISPARITY, seed=21)


@pytest.fixture(scope="module")
def start(ros_context, tmp_path_factory):
    nodes = NodesUnderTest()

    def start_node(namespace: str, image_transport: str, rectify: bool, probe):
        process, client, _ = nodes.start(
            tmp_path_factory.mktemp("inputs") / "node.log",
            {"model": "sgbm", "max_disparity": 64, "image_transport": image_transport,
             "rectify": rectify}, namespace, probe, topics=InputTopics(image_transport, rectify))
        return process, client

    yield start_node
    assert all(code == 0 for code in nodes.close())


def _compressed_set(left, right, stamp_s, codec="jpeg"):
    return stereo_messages(left, right, camera_for(WIDTH, HEIGHT, FX, BASELINE),
                           round(stamp_s * 1e9), FRAME, codec)


def _check_plane(out, tolerance=0.01):
    depth = as_array(out["depth"])
    assert abs(np.nanmedian(depth) - DISTANCE) < tolerance * DISTANCE
    info = out["depth/camera_info"]
    p = list(info.p)
    assert list(info.d) == [0.0] * 5 and list(info.r) == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert list(info.k) == [p[0], p[1], p[2], p[4], p[5], p[6], p[8], p[9], p[10]]
    points = cloud_array(out["points2"])
    v, u = 120, 200
    z = depth[v, u]
    assert np.isfinite(z)
    np.testing.assert_allclose(points[v, u, :3], [(u - p[2]) * z / p[0], (v - p[6]) * z / p[5],
                                                  z], rtol=1e-5)


ALL = ("depth", "depth/camera_info", "points2")


@pytest.fixture(scope="module")
def compressed(start, plane):
    process, client = start("/jpeg", "compressed", False, _compressed_set(*plane, 1.0))
    return process, client


def test_jpeg_compressed_rectified_images(compressed, plane):
    process, client = compressed
    assert "compressed images; subscribed to /jpeg/left/image_rect/compressed, " \
           "/jpeg/right/image_rect/compressed" in process.log()
    out = client.send_and_wait(_compressed_set(*plane, Frames.next()), ("depth",), 30)
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.01 * DISTANCE
    out = client.send_and_wait(_compressed_set(*plane, Frames.next(), "png"), ("depth",), 30)
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.01 * DISTANCE
    # cv_bridge's Python cv2_to_compressed_imgmsg writes format 'jpg' (outside the pattern).
    messages = _compressed_set(*plane, Frames.next())
    for topic in ("left/image_rect/compressed", "right/image_rect/compressed"):
        messages[topic].format = "jpg"
    out = client.send_and_wait(messages, ("depth",), 30)
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.01 * DISTANCE


def _with(messages, **fields):
    for name, value in fields.items():
        setattr(messages["left/image_rect/compressed"], name, value)
    return messages


def _resized(plane, stamp):
    messages = _compressed_set(*plane, stamp)
    small = _compressed_set(plane[0][:, :WIDTH - 32], plane[1][:, :WIDTH - 32], stamp)
    for topic in ("left/image_rect/compressed", "right/image_rect/compressed"):
        messages[topic] = small[topic]
    return messages


BAD_COMPRESSED = [
    ("truncated jpeg", lambda plane, s: _with(
        m := _compressed_set(*plane, s),
        data=bytes(m["left/image_rect/compressed"].data)[:3000]),
     "left/image_rect/compressed: JPEG data (3000 bytes) has no end marker (FF D9): truncated"),
    ("corrupt jpeg", lambda plane, s: _with(_compressed_set(*plane, s),
                                            data=b"\xff\xd8" + bytes(4000) + b"\xff\xd9"),
     "left/image_rect/compressed: JPEG data (4004 bytes) could not be decoded: corrupt"),
    ("empty data", lambda plane, s: _with(_compressed_set(*plane, s), data=b""),
     "left/image_rect/compressed: data is empty"),
    ("unknown format", lambda plane, s: _with(_compressed_set(*plane, s),
                                              format="bgr8; webp compressed bgr8"),
     "left/image_rect/compressed: format 'bgr8; webp compressed bgr8' is not supported"),
    ("neither jpeg nor png", lambda plane, s: _with(_compressed_set(*plane, s), format="jpg",
                                                    data=b"GIF89a" + bytes(4000)),
     "left/image_rect/compressed: format 'jpg' names no codec in image_transport's pattern"),
    ("compressedDepth", lambda plane, s: _with(_compressed_set(*plane, s),
                                               format="16UC1; compressedDepth png"),
     "is compressedDepth data (a depth map), not a camera image"),
    ("size vs camera_info", _resized,
     "left/image_rect/compressed is 288x240 px but left/camera_info says 320x240"),
]


@pytest.mark.parametrize("name, make, message", BAD_COMPRESSED, ids=[b[0] for b in BAD_COMPRESSED])
def test_bad_compressed_input_is_named_and_the_next_set_works(compressed, plane, name, make,
                                                              message):
    process, client = compressed
    client.publish(make(plane, Frames.next()))
    assert process.wait_for_log(as_remapped(message, "/jpeg"), timeout=20), process.log()[-2000:]
    out = client.send_and_wait(_compressed_set(*plane, Frames.next()), ("depth",), 30)
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02 * DISTANCE


def _reduced(messages, binning=1, offset=(0, 0)):
    """The set's rectified images as a binned or cropped view of a larger camera: the
    camera_infos describe the full camera (K and P in its pixels) and say how the images were
    made from it (binning, region of interest), as a driver or image_proc's crop_decimate
    publishes them."""
    for side in ("left", "right"):
        info = messages[f"{side}/camera_info"]
        k, p = list(info.k), list(info.p)
        for matrix, fx, cx, fy, cy, tx in ((k, 0, 2, 4, 5, None), (p, 0, 2, 5, 6, 3)):
            for index in (fx, cx, fy, cy) + ((tx,) if tx is not None else ()):
                matrix[index] *= binning
            matrix[cx] += offset[0]
            matrix[cy] += offset[1]
        info.k, info.p = k, p
        info.width, info.height = binning * WIDTH + 2 * offset[0], binning * HEIGHT + 2 * offset[1]
        info.binning_x = info.binning_y = binning
        if offset != (0, 0):
            info.roi.x_offset, info.roi.y_offset = offset
            info.roi.width, info.roi.height = binning * WIDTH, binning * HEIGHT
    return messages


def test_binned_and_cropped_cameras_give_depth_in_their_own_pixels(start, plane):
    # image_geometry's reading: P moved by the ROI offset, then divided by the binning.
    process, client = start("/reduced", "raw", False, _reduced(stereo_set(*plane, 1.0), 2))
    for binning, offset in ((2, (0, 0)), (1, (100, 50)), (2, (40, 20))):
        messages = _reduced(stereo_set(*plane, Frames.next()), binning, offset)
        out = client.send_and_wait(messages, (*ALL, "disparity"), 30)
        depth = as_array(out["depth"])
        assert abs(np.nanmedian(depth) - DISTANCE) < 0.01 * DISTANCE, (binning, offset)
        info = out["depth/camera_info"]
        sent = messages["left/camera_info"]
        assert (info.width, info.height, info.binning_x, info.binning_y) == (
            sent.width, sent.height, sent.binning_x, sent.binning_y)
        assert (info.roi.x_offset, info.roi.y_offset) == offset and list(info.p) == list(sent.p)
        assert out["disparity"].f == FX  # in the image's own pixels, like the disparities
        v, u = 120, 200
        z = depth[v, u]
        cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2  # in the image's own pixels
        np.testing.assert_allclose(cloud_array(out["points2"])[v, u, :3],
                                   [(u - cx) * z / FX, (v - cy) * z / FX, z], rtol=1e-5)
    wrong = _reduced(stereo_set(*plane, Frames.next()), 2)
    wrong["left/camera_info"].binning_x = wrong["left/camera_info"].binning_y = 4
    client.publish(wrong)
    assert process.wait_for_log(as_remapped(
        "left/image_rect is 320x240 px but left/camera_info says 640x480 with binning 4x4 and roi "
        "(x_offset 0, y_offset 0, width 0, height 0), i.e. 160x120 px", "/reduced"), 20), \
        process.log()[-2000:]
    client.send_and_wait(_reduced(stereo_set(*plane, Frames.next()), 2), ALL, 30)


def _raw_set(plane, models, stamp_s, codec=None):
    left, right = plane
    left_model, right_model = models
    return raw_stereo_set(raw_view(left, left_model), raw_view(right, right_model), left_model,
                          right_model, stamp_s, codec)


@pytest.mark.parametrize("distortion_model", ["plumb_bob", "equidistant"])
def test_raw_camera_rectified_by_the_node(start, plane, distortion_model):
    models = example_camera_models(WIDTH, HEIGHT, FX, BASELINE, distortion_model)
    namespace = f"/raw_{distortion_model}"
    process, client = start(namespace, "raw", True, _raw_set(plane, models, 1.0))
    assert ", raw images, rectified here (opencv); subscribed to " \
           f"{namespace}/left/image_raw, {namespace}/right/image_raw" in process.log()
    out = client.send_and_wait(_raw_set(plane, models, Frames.next()), ALL, 30)
    _check_plane(out)
    # Matched without rectification, the same raw pair is far from 30 px: the check can fail.
    raw = [raw_view(image, model) for image, model in zip(plane, models)]
    unrectified = StereoEstimator("sgbm", None, 64).estimate(*raw).disparity
    assert abs(np.nanmedian(unrectified) - DISPARITY) > 1.0


def test_jpeg_compressed_raw_camera(start, plane):
    models = example_camera_models(WIDTH, HEIGHT, FX, BASELINE, "plumb_bob")
    process, client = start("/raw_jpeg", "compressed", True,
                            _raw_set(plane, models, 1.0, "jpeg"))
    out = client.send_and_wait(_raw_set(plane, models, Frames.next(), "jpeg"), ALL, 30)
    _check_plane(out)

    # Maps come from the calibration once; a new calibration computes them again.
    for _ in range(2):
        client.send_and_wait(_raw_set(plane, models, Frames.next(), "jpeg"), ("depth",), 30)
    recalibrated = [dataclasses.replace(m, d=(-0.1, 0.02, 0.0, 0.0, 0.0)) for m in models]
    out = client.send_and_wait(_raw_set(plane, recalibrated, Frames.next(), "jpeg"), ALL, 30)
    _check_plane(out)
    arrays = []
    client.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, 10)

    def maps_computed():
        values = [kv.value for a in arrays for s in a.status if s.name.startswith("/raw_jpeg")
                  for kv in s.values if kv.key == "rectification maps computed"]
        return values[-1] if values else None

    assert client.wait_until(lambda: maps_computed() is not None, 5)
    assert maps_computed() == "4"  # 2 cameras x 2 calibrations, over 5 sets

    binned = [dataclasses.replace(m, binning_x=2) for m in models]
    client.publish(_raw_set(plane, binned, Frames.next(), "jpeg"))
    assert process.wait_for_log("left/camera_info binning_x = 2: binned images are not supported "
                                "with rectify:=true", 20), process.log()[-2000:]
    _check_plane(client.send_and_wait(_raw_set(plane, models, Frames.next(), "jpeg"), ALL, 30))


def test_rectified_pipeline_ignores_raw_topics(compressed, plane):
    # A rectified-input node does not listen to raw topics: only its own inputs are subscribed.
    process, client = compressed
    [info] = client.node.get_subscriptions_info_by_topic("/jpeg/left/image_rect/compressed")
    assert info.topic_type == "sensor_msgs/msg/CompressedImage"
    assert not client.node.get_subscriptions_info_by_topic("/jpeg/left/image_rect")
    out = client.send_and_wait(_compressed_set(*plane, Frames.next()), ("depth",), 30)
    assert out["depth"].header.frame_id == FRAME
