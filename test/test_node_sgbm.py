"""The node in its own process over real DDS, SGBM backend: a plane at a known distance, message
fields, bad input followed by good frames, runtime parameters, diagnostics. Every test runs twice:
with the synchroniser this environment has and with the real message_filters."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from ros_harness import (SYNC_MODES, NodeProcess, StereoClient, as_remapped, camera_for,
                         image_message, stereo_set)
from scenes import bayer_mosaic, yuv422
from stereo_depth_node.ros.conversions import (array_to_image_fields, float_image_to_array,
                                               point_cloud_to_array)
from stereo_depth_node.ros.messages import camera_infos
from stereo_depth_node.data.plane import render_plane_pair

WIDTH, HEIGHT, FX, BASELINE, DISTANCE = 320, 240, 500.0, 0.12, 2.0
DISPARITY = FX * BASELINE / DISTANCE  # 30 px
MAX_DISPARITY = 64


@pytest.fixture(scope="module")
def plane():
    return render_plane_pair(HEIGHT, WIDTH, DISPARITY, seed=11)


@pytest.fixture(scope="module", params=SYNC_MODES)
def node(ros_context, tmp_path_factory, request):
    namespace = f"/sgbm_{request.param}"
    # Whole numbers for the float parameters min_depth and max_depth, as a YAML file often has.
    process = NodeProcess(tmp_path_factory.mktemp("sgbm") / "node.log",
                          {"model": "sgbm", "max_disparity": MAX_DISPARITY, "min_depth": 0,
                           "max_depth": 100}, namespace, mode=request.param)
    process.wait_ready()
    process.namespace = namespace
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def client(node, plane):
    client = StereoClient(node.namespace, "sgbm_test_client")
    # One /diagnostics subscription for the module, made before the client spins: destroying a
    # subscription while its executor thread spins killed that thread in rclpy ("cannot use
    # Destroyable because destruction was requested"), and every later test timed out.
    client.diagnostics = []
    client.node.create_subscription(DiagnosticArray, "/diagnostics", client.diagnostics.append,
                                    10)
    client.connect(stereo_set(*plane, 999.0, fx=FX, baseline=BASELINE))
    yield client
    client.close()


class Frames:
    """Unique stamps per published set, so that outputs can be matched to inputs."""
    stamp = 1000.0

    @classmethod
    def next(cls) -> float:
        cls.stamp += 1.0
        return cls.stamp


def send_and_wait(client, messages, topics=("disparity",), timeout=30.0):
    return client.send_and_wait(messages, topics, timeout)


as_array = float_image_to_array
cloud_array = point_cloud_to_array


ALL = ("disparity", "depth", "depth/camera_info", "points2", "confidence")


def test_plane_at_two_metres(client, plane):
    left, right = plane
    messages = stereo_set(left, right, Frames.next(), fx=FX, baseline=BASELINE)
    out = send_and_wait(client, messages, ALL)
    left_header = messages["left/image_rect"].header
    for topic in ALL:
        assert out[topic].header == left_header, topic

    disparity = out["disparity"]
    assert (disparity.f, disparity.t) == (pytest.approx(FX), pytest.approx(BASELINE))
    assert disparity.min_disparity == 0.0 and disparity.max_disparity == MAX_DISPARITY - 1
    assert disparity.delta_d == pytest.approx(1 / 16)
    image = as_array(disparity.image)
    assert disparity.image.encoding == "32FC1" and image.shape == (HEIGHT, WIDTH)
    finite = np.isfinite(image)
    rows, cols = np.flatnonzero(finite.any(1)), np.flatnonzero(finite.any(0))
    window = disparity.valid_window
    assert (window.x_offset, window.y_offset) == (cols[0], rows[0])
    assert (window.width, window.height) == (cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    assert window.width > 0  # stereo_image_proc publishes a negative width here

    depth = as_array(out["depth"])
    assert out["depth"].encoding == "32FC1"
    assert abs(np.nanmedian(depth) - DISTANCE) < 0.01 * DISTANCE
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.isfinite(depth), finite & (image > 0))

    cloud = out["points2"]
    assert (cloud.height, cloud.width, cloud.point_step) == (HEIGHT, WIDTH, 16)
    assert cloud.row_step == 16 * WIDTH and not cloud.is_dense and not cloud.is_bigendian
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    points = cloud_array(cloud)
    np.testing.assert_array_equal(np.isnan(points[..., 2]), ~np.isfinite(depth))
    np.testing.assert_allclose(points[..., 2], depth, equal_nan=True)
    v, u = 100, 200
    z = depth[v, u]
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    np.testing.assert_allclose(points[v, u, :3], [(u - cx) * z / FX, (v - cy) * z / FX, z],
                               rtol=1e-5)
    rgb = points[v, u, 3:4].view(np.uint32)[0]
    assert ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255) == tuple(left[v, u])

    info = out["depth/camera_info"]
    sent_info = messages["left/camera_info"]
    assert list(info.k) == list(sent_info.k) and list(info.p) == list(sent_info.p)
    assert (info.width, info.height) == (WIDTH, HEIGHT) and info.header == left_header

    confidence = as_array(out["confidence"])
    assert set(np.unique(confidence)) <= {0.0, 1.0}
    np.testing.assert_array_equal(confidence == 1.0, finite)


def test_a_camera_info_without_size_gives_depth_camera_info_the_image_size(client, plane):
    messages = stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE)
    for topic in ("left/camera_info", "right/camera_info"):
        messages[topic].width = messages[topic].height = 0  # allowed: "not given"
    info = send_and_wait(client, messages, ("depth/camera_info",))["depth/camera_info"]
    assert (info.width, info.height) == (WIDTH, HEIGHT)


def _good_frame_still_works(client, plane):
    out = send_and_wait(client, stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE),
                        ("depth",))
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02


def _our_statuses(node, client, since: int = 0) -> list:
    """The node's /diagnostics statuses among the client's arrays from index `since` on."""
    name = f"{node.namespace}/stereo_depth_node: stereo depth"
    return [s for a in client.diagnostics[since:] for s in a.status if s.name == name]


def _values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _diagnostic_status(node, client, condition=lambda status: True):
    """The node's first /diagnostics status after this call that meets `condition`. A status
    computed just before a frame changed the node's state can arrive after that frame's outputs,
    so a test waits for the state it expects rather than taking the next status."""
    since = len(client.diagnostics)

    def found():
        return next((s for s in _our_statuses(node, client, since) if condition(s)), None)

    assert client.wait_until(lambda: found() is not None, 10), [
        (s.message, _values(s)) for s in _our_statuses(node, client, since)[-1:]]
    return found()


def _diagnostic_values(node, client) -> dict[str, str]:
    """The node's /diagnostics values from a status that arrives after this call."""
    return _values(_diagnostic_status(node, client))


def _with(messages, topic, **fields):
    for name, value in fields.items():
        setattr(messages[topic], name, value)
    return messages


def _mismatched_sizes(plane, stamp):
    left, right = plane
    messages = stereo_set(left, right, stamp)
    messages["right/image_rect"] = image_message(right[:, :-16], "rgb8", stamp)
    _, info = camera_infos(camera_for(WIDTH - 16, HEIGHT), WIDTH - 16, HEIGHT, "camera")
    info.header = messages["right/image_rect"].header
    messages["right/camera_info"] = info
    return messages


def _mono16_right(plane, stamp):
    messages = stereo_set(*plane, stamp)
    grey = plane[1].mean(axis=2).astype(np.uint16) * 257
    messages["right/image_rect"] = image_message(grey, "mono16", stamp)
    return messages


BAD_INPUTS = [
    ("size mismatch", _mismatched_sizes,
     "left/image_rect is 320x240 px but right/image_rect is 304x240 px"),
    ("image vs camera_info", lambda plane, stamp: _with(
        stereo_set(*plane, stamp), "left/camera_info", width=640, height=480),
     "left/image_rect is 320x240 px but left/camera_info says 640x480"),
    ("nv21", lambda plane, stamp: _with(stereo_set(*plane, stamp), "left/image_rect",
                                        encoding="nv21"),
     "left/image_rect: encoding 'nv21' is not supported"),
    ("yuv422 odd width", lambda plane, stamp: _with(stereo_set(*plane, stamp), "right/image_rect",
                                                    encoding="yuv422", width=WIDTH - 1),
     "right/image_rect: yuv422 image is 319 px wide; 4:2:2 YUV needs an even width"),
    ("32FC1", lambda plane, stamp: _with(stereo_set(*plane, stamp), "left/image_rect",
                                               encoding="32FC1"),
     "left/image_rect: encoding '32FC1' is not supported"),
    ("short data", lambda plane, stamp: _with(stereo_set(*plane, stamp), "left/image_rect",
                                              data=bytes(1000)),
     "left/image_rect: data has 1000 bytes; expected step x height = 960 x 240 = 230400"),
    ("step too small", lambda plane, stamp: _with(stereo_set(*plane, stamp), "right/image_rect",
                                                  step=100),
     "right/image_rect: step 100 is less than width x bytes per pixel = 320 x 3 = 960"),
    ("bit depths differ", _mono16_right,
     "left/image_rect has 8-bit pixels (rgb8) but right/image_rect has 16-bit ones (mono16); "
     "both views of a pair must have one bit depth"),
    ("under 32 px", lambda plane, stamp: stereo_set(
        *(np.ascontiguousarray(image[:24, :24]) for image in plane), stamp),
     "left/image_rect is 24x24 px; both sides must be at least 32 px"),
    # OpenCV itself failed here with "Failed to allocate 18446744073709433617 bytes".
    ("narrower than the range", lambda plane, stamp: stereo_set(
        *(np.ascontiguousarray(image[:, :MAX_DISPARITY - 16]) for image in plane), stamp),
     "sgbm matches 48 px wide images here (48 px at input_scale 1), not wider than "
     "max_disparity 64: the search range must be narrower than the image"),
]


@pytest.mark.parametrize("name, make, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_and_the_next_frame_is_processed(node, client, plane, name, make,
                                                            message):
    client.publish(make(plane, Frames.next()))
    # The inputs are named as remapped (here into the node's namespace), as the user knows them.
    assert node.wait_for_log(as_remapped(message, node.namespace), timeout=20), node.log()[-2000:]
    _good_frame_still_works(client, plane)


@pytest.mark.parametrize("right_p, message", [
    (lambda p: p.__setitem__(3, 0.0), r"right camera_info P[3] = 0.0 must be negative"),
    (lambda p: p.__setitem__(3, 60.0), r"right camera_info P[3] = 60.0 must be negative"),
    (lambda p: p.__setitem__(0, 0.0), r"right camera_info P has zero focal length"),
    (lambda p: p.__setitem__(0, -FX), r"right camera_info P has negative focal length"),
    (lambda p: [p.__setitem__(i, 0.0) for i in range(12)], "right camera_info P has zero focal"),
    (lambda p: p.__setitem__(2, math.nan), "right camera_info P contains NaN"),
])
def test_bad_calibration_keeps_disparity_and_skips_depth(node, client, plane, right_p, message):
    before = _diagnostic_values(node, client)
    messages = stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE)
    p = list(messages["right/camera_info"].p)
    right_p(p)
    messages["right/camera_info"].p = p
    stamp = messages["left/image_rect"].header.stamp
    out = send_and_wait(client, messages, ("disparity", "confidence"))
    assert np.nanmedian(as_array(out["disparity"].image)) == pytest.approx(DISPARITY, abs=0.3)
    assert node.wait_for_log(f"depth and points skipped: {message}", timeout=10)
    time.sleep(0.3)
    for topic in ("depth", "points2"):
        assert not any(m.header.stamp == stamp for m in client.messages(topic)), topic
    # Published, so not a rejected set: counted apart (it was counted as rejected).
    after = _diagnostic_values(node, client)
    for key, more in (("published without depth (calibration)", 1), ("rejected (bad input)", 0),
                      ("failed", 0)):
        assert int(after[key]) == int(before[key]) + more, key
    _good_frame_still_works(client, plane)


def test_zero_focal_in_left_camera_info_is_named(node, client, plane):
    messages = stereo_set(*plane, Frames.next())
    messages["left/camera_info"].p = [0.0] * 12
    client.publish(messages)
    assert node.wait_for_log("left camera_info P has zero focal length (P[0]=0.0", timeout=10)
    # /diagnostics no longer shows the calibration of the frames before.
    _diagnostic_status(node, client, lambda s: _values(s)["camera_infos"].startswith(
        "unknown (the newest frame had no usable camera_infos"))
    _good_frame_still_works(client, plane)


def _with_right_p(plane, **entries):
    """A set of the plane whose right camera_info P has entries changed (p3=-61.2: P[3])."""
    messages = stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE)
    p = list(messages["right/camera_info"].p)
    for name, value in entries.items():
        p[int(name[1:])] = value
    messages["right/camera_info"].p = p
    return messages


def test_a_pair_that_is_no_rectified_pair_is_named_once_and_depth_follows_p3(node, client,
                                                                             plane):
    warning = as_remapped("left/camera_info and right/camera_info describe no rectified "
                          "horizontal pair (in the images' pixels): fx 500 against 510 (P[0]). "
                          "Matching runs along rows", node.namespace)
    for _ in range(2):
        out = send_and_wait(client, _with_right_p(plane, p0=510.0, p3=-510.0 * BASELINE),
                            ("disparity", "depth"))
        # stereo_image_proc's Z = -P_r[3] / d, and the DisparityImage's f t / d says the same.
        depth = np.nanmedian(as_array(out["depth"]))
        assert depth == pytest.approx(510.0 * BASELINE / DISPARITY, abs=0.02)
        disparity = out["disparity"]
        assert disparity.f * disparity.t == pytest.approx(510.0 * BASELINE)
    assert node.wait_for_log(warning, timeout=10, level="WARN")
    assert node.log().count(warning) == 1
    # The log says it once; /diagnostics says it each second while it lasts.
    status = _diagnostic_status(node, client, lambda s: s.level == DiagnosticStatus.WARN and (
        s.message.startswith("the camera_infos describe no rectified pair; ")))
    assert _values(status)["camera_infos"] == ("no rectified horizontal pair: fx 500 against 510 "
                                               "(P[0])")
    _good_frame_still_works(client, plane)
    status = _diagnostic_status(
        node, client, lambda s: _values(s)["camera_infos"] == "a rectified horizontal pair")
    assert "no rectified pair" not in status.message


def test_the_search_range_names_a_far_limit_and_warns_where_it_gives_no_depth(node, client,
                                                                              plane):
    # The right principal point 20 px right of the left one: shifts 0..63 px are disparities
    # 20..83 px, so from f B / 83 to f B / 20 = 3 m; the plane's 30 px shift is 50 px, 1.2 m.
    out = send_and_wait(client, _with_right_p(plane, p2=WIDTH / 2 - 0.5 + 20), ("depth",))
    assert np.nanmedian(as_array(out["depth"])) == pytest.approx(FX * BASELINE / 50, abs=0.01)
    assert node.wait_for_log(f"search range: depths from {FX * BASELINE / 83:.3g} m to 3 m "
                             f"(max_disparity 64 at input_scale 1)", timeout=10, level="INFO")
    assert node.wait_for_log("A surface farther than 3 m is matched inside the range too and "
                             "reported nearer (by sgbm partly invalid): the right principal point "
                             "lies 20 px right of the left one (P[2])", timeout=10, level="INFO")
    values = _values(_diagnostic_status(
        node, client, lambda s: _values(s)["farthest depth in search range (m)"] == "3"))
    assert values["nearest depth in search range (m)"] == f"{FX * BASELINE / 83:.3g}"
    assert values["search range"].startswith(f"search range: depths from "
                                             f"{FX * BASELINE / 83:.3g} m to 3 m")
    # A baseline typed in millimetres: every depth searched lies beyond max_depth (100 m).
    send_and_wait(client, _with_right_p(plane, p3=-FX * BASELINE * 1000), ("disparity",))
    assert node.wait_for_log(f"search range: depths from {FX * BASELINE * 1000 / 63:.3g} m on",
                             timeout=10, level="WARN")
    assert node.wait_for_log("Every depth the range can give lies beyond max_depth (100 m), so "
                             "depth and points2 hold NaN only: is the right camera_info's P[3] "
                             "(-fx * baseline) in metres?", timeout=10, level="WARN")
    status = _diagnostic_status(node, client, lambda s: s.level == DiagnosticStatus.WARN and (
        s.message.startswith("the search range gives no depth; ")))
    assert "Every depth the range can give lies beyond max_depth" in _values(status)[
        "search range"]
    _good_frame_still_works(client, plane)
    status = _diagnostic_status(
        node, client, lambda s: _values(s)["farthest depth in search range (m)"] == "unlimited")
    assert "gives no depth" not in status.message


def test_raw_camera_encodings_bayer_and_yuv422(node, client, plane):
    """A driver's mosaic or 4:2:2 output, as rectify:=true meets it on image_raw, matches like the
    rgb8 pair it came from."""
    left, right = plane
    for encoding, pack in (("bayer_grbg8", lambda rgb: bayer_mosaic(rgb, "grbg")),
                           ("yuv422", lambda rgb: yuv422(rgb[:, :, 1], 128, 128, "UYVY"))):
        messages = stereo_set(left, right, Frames.next(), fx=FX, baseline=BASELINE)
        for topic, image in (("left/image_rect", left), ("right/image_rect", right)):
            fields = array_to_image_fields(pack(image), encoding)
            for name in ("encoding", "step", "data"):
                setattr(messages[topic], name, fields[name])
        out = send_and_wait(client, messages, ("depth",))
        assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02, encoding


def test_an_empty_frame_id_is_served_and_named_once(node, client, plane):
    for _ in range(2):
        messages = stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE)
        for message in messages.values():
            message.header.frame_id = ""
        out = send_and_wait(client, messages, ("depth", "points2"))
        assert out["points2"].header.frame_id == ""
        assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02
    warning = "left/image_rect has an empty header.frame_id, and every output carries"
    assert node.wait_for_log(warning, timeout=10)
    assert node.log().count(warning) == 1
    _good_frame_still_works(client, plane)


def test_row_padding_and_big_endian_mono16(node, client, plane):
    left, right = plane
    stamp = Frames.next()
    messages = stereo_set(left, right, stamp, fx=FX, baseline=BASELINE)
    for topic, image in (("left/image_rect", left), ("right/image_rect", right)):
        padded = np.zeros((HEIGHT, WIDTH * 3 + 64), np.uint8)
        padded[:, :WIDTH * 3] = image.reshape(HEIGHT, -1)
        messages[topic].step = WIDTH * 3 + 64
        messages[topic].data = padded.tobytes()
    out = send_and_wait(client, messages, ("depth",))
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02

    stamp = Frames.next()
    messages = stereo_set(left, right, stamp, fx=FX, baseline=BASELINE)
    for topic, image in (("left/image_rect", left), ("right/image_rect", right)):
        mono = image[:, :, 1].astype(">u2") * 257
        messages[topic].encoding, messages[topic].is_bigendian = "mono16", 1
        messages[topic].step, messages[topic].data = WIDTH * 2, mono.tobytes()
    out = send_and_wait(client, messages, ("depth",))
    assert abs(np.nanmedian(as_array(out["depth"])) - DISTANCE) < 0.02


def test_runtime_parameters(node, client, plane):
    parameters = AsyncParameterClient(client.node, f"{node.namespace}/stereo_depth_node")
    assert parameters.wait_for_services(10.0)

    def set_parameters(*values):
        future = parameters.set_parameters(list(values))
        assert client.wait_until(future.done, 10.0)
        return future.result().results

    [refused] = set_parameters(Parameter("model", value="psmnet"))
    assert not refused.successful
    assert refused.reason == "Trying to set a read-only parameter: model."
    future = parameters.describe_parameters(["model", "max_depth", "input_scale",
                                             "confidence_threshold"])
    assert client.wait_until(future.done, 10.0)
    model, max_depth, input_scale, confidence = future.result().descriptors
    assert model.read_only and model.description.endswith("(fixed at start)")
    assert not max_depth.read_only and not max_depth.floating_point_range
    assert [(r.from_value, r.to_value) for r in input_scale.floating_point_range] == [(0.0, 4.0)]
    assert [(r.from_value, r.to_value) for r in confidence.floating_point_range] == [(0.0, 1.0)]
    [refused] = set_parameters(Parameter("confidence_threshold", value=1.5))
    assert not refused.successful and refused.reason.startswith(
        "Parameter confidence_threshold out of range")
    [refused] = set_parameters(Parameter("max_depth", value=-1.0))
    assert not refused.successful and "max_depth (-1.0) must be greater than min_depth" in \
        refused.reason
    [refused] = set_parameters(Parameter("max_depth", value="far"))
    assert not refused.successful and "max_depth must be a number (e.g. 10 or 10.0), got 'far'" \
        in refused.reason
    [accepted] = set_parameters(Parameter("max_depth", value=1))  # a whole number, as typed
    assert accepted.successful
    out = send_and_wait(client, stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE),
                        ("depth", "points2"))
    # The largest disparity searched is 63 px: Z = f B / 63 = 60 / 63 m.
    assert node.wait_for_log(f"search range: depths from {FX * BASELINE / 63:.3g} m on "
                             f"(max_disparity 64 at input_scale 1); a surface nearer", timeout=10)
    assert np.all(np.isnan(as_array(out["depth"])))  # the plane is at 2 m
    assert np.all(np.isnan(cloud_array(out["points2"])[..., :3]))
    results = set_parameters(Parameter("max_depth", value=100.0),
                             Parameter("use_color", value=False))
    assert all(r.successful for r in results)
    out = send_and_wait(client, stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE),
                        ("points2",))
    assert [f.name for f in out["points2"].fields] == ["x", "y", "z"]
    assert out["points2"].point_step == 16
    set_parameters(Parameter("use_color", value=True))

    [refused] = set_parameters(Parameter("input_scale", value=5.0))  # rclpy's bound
    assert not refused.successful and "Parameter input_scale out of range" in refused.reason
    [refused] = set_parameters(Parameter("input_scale", value=5))  # a whole number gets past it
    assert not refused.successful and "input_scale must be in (0, 4], got 5.0" in refused.reason
    [refused] = set_parameters(Parameter("input_scale", value=0.0))  # rclpy lets bounds pass
    assert not refused.successful and "input_scale must be in (0, 4], got 0.0" in refused.reason
    # Matching at twice the size: max_disparity counts pixels there, so the range published in
    # input pixels halves, and the disparity comes back in input pixels.
    [accepted] = set_parameters(Parameter("input_scale", value=2.0))
    assert accepted.successful
    out = send_and_wait(client, stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE))
    assert out["disparity"].max_disparity == (MAX_DISPARITY - 1) / 2
    assert out["disparity"].delta_d == pytest.approx(1 / 32)  # SGBM's 1/16 px at twice the size
    assert out["disparity"].image.width == WIDTH
    assert abs(np.nanmedian(as_array(out["disparity"].image)) - DISPARITY) < 0.25
    # 63 px at twice the size are 31.5 input pixels: the range now ends twice as far away.
    assert node.wait_for_log(f"search range: depths from {FX * BASELINE / 31.5:.3g} m on "
                             f"(max_disparity 64 at input_scale 2)", timeout=10)
    # Shrunk below 32 px a side the frame is refused by name (the networks answered noise there),
    # and the next frame at a usable scale is served.
    [accepted] = set_parameters(Parameter("input_scale", value=0.1))
    assert accepted.successful
    client.publish(stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE))
    assert node.wait_for_log(f"input_scale 0.1 makes the {WIDTH}x{HEIGHT} px pair 32x24 px for "
                             f"matching; both sides must be at least 32 px", timeout=20)
    set_parameters(Parameter("input_scale", value=1.0))
    _good_frame_still_works(client, plane)


def test_diagnostics_report_counts(node, client, plane):
    send_and_wait(client, stereo_set(*plane, Frames.next(), fx=FX, baseline=BASELINE))
    values = _diagnostic_values(node, client)
    assert int(values["processed"]) >= 1 and values["model"] == "sgbm"
    assert int(values["received sets"]) >= int(values["processed"])
    assert "dropped (newer set arrived)" in values and "rejected (bad input)" in values
    assert values["synchronizer"] == node.synchronizer
    nearest = f"{FX * BASELINE / (MAX_DISPARITY - 1):.3g}"  # this test's frame: scale 1
    assert client.wait_until(lambda: any(
        kv.key == "nearest depth in search range (m)" and kv.value == nearest
        for kv in _our_statuses(node, client)[-1].values), 10)
    received = dict(entry.rsplit(" ", 1) for entry in values["received messages"].split(", "))
    assert list(received) == [f"{node.namespace}/{name}" for name in (
        "left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")]
    assert all(int(count) >= int(values["received sets"]) for count in received.values())


def test_default_qos_sensor_data_in_reliable_out(node, client):
    from rclpy.qos import ReliabilityPolicy

    [subscription] = client.node.get_subscriptions_info_by_topic(
        f"{node.namespace}/left/image_rect")
    assert subscription.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    for topic in ("disparity", "depth", "points2"):
        [publisher] = client.node.get_publishers_info_by_topic(f"{node.namespace}/{topic}")
        assert publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE
