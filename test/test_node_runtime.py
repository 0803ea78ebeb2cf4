"""The node's processing model over real DDS: sync policies, the neural backend, back-pressure,
bad configuration at start, and shutdown."""
from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import ReliabilityPolicy

from ros_harness import NODE_COMMAND, NodeProcess, StereoClient, ros_environment, stereo_set
from stereo_depth_node.data.plane import render_plane_pair
from test_node_sgbm import as_array, cloud_array, send_and_wait


@pytest.fixture
def run_node(ros_context, tmp_path):
    started = []

    def start(parameters, namespace):
        process = NodeProcess(tmp_path / f"{namespace.strip('/')}.log", parameters, namespace)
        process.wait_ready()
        started.append(process)
        client = StereoClient(namespace, f"client_{namespace.strip('/')}")
        started.append(client)
        probes = client.connect(stereo_set(*render_plane_pair(64, 96, 8.0, seed=9), 1.0),
                                resend_s=3.0)
        return process, client, probes

    yield start
    for item in reversed(started):
        if isinstance(item, StereoClient):
            item.close()
        else:
            assert item.stop() == 0


def _skewed_set(left, right, stamp, skew):
    """Left image and info at `stamp`, right image and info `skew` seconds later."""
    messages = stereo_set(left, right, stamp)
    late = stereo_set(left, right, stamp + skew)
    for topic in ("right/image_rect", "right/camera_info"):
        messages[topic] = late[topic]
    return messages


@pytest.mark.parametrize("approximate", [False, True])
def test_exact_and_approximate_sync(run_node, approximate):
    namespace = f"/sync_{'approx' if approximate else 'exact'}"
    process, client, _ = run_node({"model": "sgbm", "max_disparity": 32,
                                   "approximate_sync": approximate, "sync_tolerance": 0.005},
                                  namespace)
    left, right = render_plane_pair(64, 96, 8.0, seed=2)
    messages = _skewed_set(left, right, 50.0, 0.003)
    client.publish(messages)
    stamp = messages["left/image_rect"].header.stamp  # outputs carry the left header
    paired = client.wait_until(lambda: client.arrival("disparity", stamp) is not None, 5.0)
    assert paired == approximate
    if not approximate:
        # The unpaired messages are reported once a later set consumes them.
        send_and_wait(client, stereo_set(left, right, 60.0))
        assert process.wait_for_log("found no partners (exact stamps)", 10)


def test_stamps_beyond_the_tolerance_are_reported_and_the_next_set_works(run_node):
    process, client, _ = run_node({"model": "sgbm", "max_disparity": 32, "approximate_sync": True,
                                "sync_tolerance": 0.01}, "/sync_far")
    left, right = render_plane_pair(64, 96, 8.0, seed=2)
    messages = _skewed_set(left, right, 70.0, 0.05)
    client.publish(messages)
    time.sleep(0.5)
    assert client.arrival("disparity", messages["left/image_rect"].header.stamp) is None
    send_and_wait(client, stereo_set(left, right, 71.0))
    assert process.wait_for_log("found no partners (within sync_tolerance 0.01 s)", 10)
    assert "ms" in process.log()


def test_neural_backend_outputs(run_node):
    process, client, _ = run_node({"model": "psmnet_dws", "weights": "none", "max_disparity": 16,
                                "device": "cpu"}, "/neural")
    left, right = render_plane_pair(64, 96, 4.0, seed=3)
    messages = stereo_set(left, right, 80.0)
    out = send_and_wait(client, messages, ("disparity", "depth", "depth/camera_info", "points2",
                                           "confidence"), timeout=60)
    for topic, message in out.items():
        assert message.header == messages["left/image_rect"].header, topic
    disparity = as_array(out["disparity"].image)
    depth, confidence = as_array(out["depth"]), as_array(out["confidence"])
    assert disparity.shape == depth.shape == confidence.shape == (64, 96)
    assert out["disparity"].image.encoding == out["depth"].encoding == "32FC1"
    assert out["disparity"].delta_d == pytest.approx(1 / 256)
    assert np.all(np.isfinite(disparity))  # a network answers everywhere
    assert np.all((confidence >= 0) & (confidence <= 1))
    # Depth exists where the disparity puts the point in front of the camera and within the
    # default max_depth of 100 m (fx 500 px, baseline 0.12 m: d > 0.6 px).
    np.testing.assert_array_equal(np.isfinite(depth), disparity > 500 * 0.12 / 100)
    points = cloud_array(out["points2"])
    np.testing.assert_array_equal(np.isnan(points[..., 0]), np.isnan(depth))
    assert "no trained weights" not in process.log()  # weights=none asks for initial weights


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_back_pressure_keeps_the_newest_and_counts_drops(run_node):
    # A network on the CPU at 160x240 needs far longer than the 33 ms between frames.
    # Reliable inputs through rclpy's QoS overrides, so that every one of the sets arrives and
    # the counts below are exact.
    reliable = {f"qos_overrides./slow/{topic}.subscription.reliability": "reliable"
                for topic in ("left/image_rect", "right/image_rect", "left/camera_info",
                              "right/camera_info")}
    process, client, probes = run_node({"model": "psmnet_dws", "weights": "none",
                                        "max_disparity": 32, "device": "cpu", **reliable},
                                       "/slow")
    [info] = client.node.get_subscriptions_info_by_topic("/slow/left/image_rect")
    assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    left, right = render_plane_pair(160, 240, 10.0, seed=4)
    send_and_wait(client, stereo_set(left, right, 2.0), timeout=60)  # warm-up at this size
    rss_before = _rss_mib(process.process.pid)
    parameters = AsyncParameterClient(client.node, "/slow/stereo_depth_node")
    assert parameters.wait_for_services(10.0)
    answer_times = []
    for i in range(50):
        client.publish(stereo_set(left, right, 100.0 + i / 30))
        if i % 10 == 5:  # the executor answers while the worker is busy with the network
            start = time.monotonic()
            future = parameters.get_parameters(["max_depth"])
            assert client.wait_until(future.done, 5.0)
            answer_times.append(time.monotonic() - start)
        time.sleep(1 / 30)
    last = stereo_set(left, right, 100.0 + 50 / 30)
    send_and_wait(client, last, timeout=60)
    assert max(answer_times) < 1.0
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
              for m in client.messages("disparity")]
    published = [s for s in stamps if s >= 100.0]
    assert published[-1] == pytest.approx(100.0 + 50 / 30)
    assert len(published) < 40  # most of the 51 sets were replaced by newer ones

    arrays = []
    client.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, 10)
    assert client.wait_until(lambda: any("/slow" in s.name or "stereo_depth_node" in s.name
                                         for a in arrays for s in a.status), 5)
    values = {kv.key: kv.value for a in arrays[-1:] for s in a.status for kv in s.values}
    received, processed = int(values["received sets"]), int(values["processed"])
    dropped = int(values["dropped (newer set arrived)"])
    # probes + warm-up + 50 + the last set
    assert received == probes + 52 and dropped > 10 and processed + dropped == received
    assert _rss_mib(process.process.pid) - rss_before < 150  # no backlog of frames in memory
    process.wait_for_log("dropped for newer", 15)


@pytest.mark.parametrize("parameters, message", [
    ({"model": "raft"}, "unknown model 'raft'"),
    ({"model": "psmnet_dws", "weights": "/nonexistent/w.pt"}, "'/nonexistent/w.pt' does not exist"),
    ({"model": "sgbm", "max_disparity": 40}, "multiple of 16 for sgbm, got 40"),
    ({"model": "psmnet", "weights": "none", "max_disparity": 30}, "multiple of 4, got 30"),
    ({"model": "psmnet_dws", "weights": "none", "device": "cuda"}, "device 'cuda' requested"),
    ({"model": "sgbm", "max_depth": -2.0}, "max_depth (-2.0) must be greater than min_depth"),
])
def test_bad_configuration_exits_with_one_message(ros_context, parameters, message):
    args = [*NODE_COMMAND, "--ros-args", "-r", "__ns:=/badconfig"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env=ros_environment())
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_clean_shutdown_under_two_seconds(ros_context, tmp_path, sig):
    process = NodeProcess(tmp_path / "node.log", {"model": "sgbm"}, "/shutdown")
    process.wait_ready()
    start = time.monotonic()
    code = process.stop(sig)
    assert code == 0 and time.monotonic() - start < 2.0


def test_default_parameters_load_the_shipped_network(ros_context, tmp_path):
    process = NodeProcess(tmp_path / "node.log", {"device": "cpu"}, "/defaults")
    process.wait_ready()
    try:
        log = process.log()
        assert "ready: model psmnet_dws on cpu, max disparity 64" in log
        assert "no trained weights" not in log
    finally:
        assert process.stop() == 0
