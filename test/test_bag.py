"""The bag tools: make -> play -> node -> record over real DDS, and offline processing."""
from __future__ import annotations

import signal
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock

from ros_harness import (FRAME, HANGING_TEARDOWN, NodeProcess, StereoClient,
                         assert_teardown_bounded, camera_for, reliable_inputs, ros_environment)
from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.ros.bag import TYPESTORE
from stereo_depth_node.ros.conversions import float_image_to_array
from stereo_depth_node.ros.frame import OUTPUT_TYPES as ROS_OUTPUT_TYPES
from stereo_depth_node.ros.messages import stamp_ns, stereo_messages
from stereo_depth_node.ros.spin_thread import SpinThread

CLI = [sys.executable, "-m", "stereo_depth_node.cli", "bag"]
FX, BASELINE, PAIRS = 500.0, 0.12, 3
INPUT_TYPES = {"/cam/left/image_rect": "sensor_msgs/msg/Image",
               "/cam/right/image_rect": "sensor_msgs/msg/Image",
               "/cam/left/camera_info": "sensor_msgs/msg/CameraInfo",
               "/cam/right/camera_info": "sensor_msgs/msg/CameraInfo"}
OUTPUT_TYPES = {"disparity": "stereo_msgs/msg/DisparityImage", "depth": "sensor_msgs/msg/Image",
                "depth/camera_info": "sensor_msgs/msg/CameraInfo",
                "points2": "sensor_msgs/msg/PointCloud2", "confidence": "sensor_msgs/msg/Image"}


def tree(folder):
    """{relative path: bytes} of every file under `folder`: to show it was left as it was."""
    return {f.relative_to(folder): f.read_bytes() for f in folder.rglob("*") if f.is_file()}


def publish_outputs(node, namespace, topics=tuple(ROS_OUTPUT_TYPES)):
    """Publishers on the node's outputs under `namespace`, which `bag record` waits for."""
    return [node.create_publisher(ROS_OUTPUT_TYPES[t], f"{namespace}/{t}", 10) for t in topics]


def read_bag(path):
    """{topic: (msgtype, [(timestamp, message), ...])} read with rosbags alone."""
    result = {}
    with AnyReader([path], default_typestore=TYPESTORE) as reader:
        for connection, timestamp, raw in reader.messages():
            entry = result.setdefault(connection.topic, (connection.msgtype, []))
            entry[1].append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return result


_depth = float_image_to_array  # rosbags messages have the same fields


def probe_set(stamp: int, codec: str | None = None) -> dict[str, object]:
    """A set like the bags' (the plane at 2 m), stamped `stamp` ns, for StereoClient.connect."""
    return stereo_messages(*render_plane_pair(120, 160, 30.0, seed=19),
                           camera_for(160, 120, FX, BASELINE), stamp, FRAME, codec)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """--left ... --right ... arguments of PAIRS pairs of a plane at 2.000 m, as PNG files."""
    folder = tmp_path_factory.mktemp("pairs")
    lefts, rights = [], []
    for i in range(PAIRS):
        left, right = render_plane_pair(120, 160, 30.0, seed=20 + i)  # 2.000 m
        for side, image, names in (("l", left, lefts), ("r", right, rights)):
            path = folder / f"{side}{i}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            names.append(str(path))
    return ["--left", *lefts, "--right", *rights, "--focal", str(FX), "--baseline",
            str(BASELINE), "--rate", "5"]


@pytest.fixture(scope="module")
def input_bag(tmp_path_factory, pair_files):
    bag = tmp_path_factory.mktemp("bag") / "input"
    done = subprocess.run([*CLI, "make", str(bag), *pair_files, "--namespace", "/cam"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return bag


def test_made_bag_has_the_inputs(input_bag):
    content = read_bag(input_bag)
    assert {t: c[0] for t, c in content.items()} == INPUT_TYPES
    stamps = [m.header.stamp for _, m in content["/cam/left/image_rect"][1]]
    assert len(stamps) == PAIRS
    gaps = np.diff([s.sec * 10**9 + s.nanosec for s in stamps])
    assert gaps.tolist() == [200_000_000] * (PAIRS - 1)  # 5 Hz
    _, right_info = content["/cam/right/camera_info"][1][0]
    assert right_info.p[3] == pytest.approx(-FX * BASELINE)
    _, image = content["/cam/left/image_rect"][1][0]
    assert (image.encoding, image.width, image.height) == ("rgb8", 160, 120)
    # Humble's rosbag2 reads a topic's QoS only as one YAML string (format 8), not as a list.
    info = yaml.safe_load((input_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8
    assert all(isinstance(topic["topic_metadata"]["offered_qos_profiles"], str)
               for topic in info["topics_with_message_count"])


def test_made_demo_bag_holds_the_demo_synthetic_scenes(tmp_path):
    from stereo_depth_node.demo import DEMO_SYNTHETIC_FRAMES, SYNTHETIC_CAMERA, synthetic_frames

    done = subprocess.run([*CLI, "make", str(tmp_path / "demo"), "--demo"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{DEMO_SYNTHETIC_FRAMES} stereo sets (Image) at 10.0 Hz under /stereo/" in done.stdout
    content = read_bag(tmp_path / "demo")
    frames = synthetic_frames(DEMO_SYNTHETIC_FRAMES)
    images = [m for _, m in content["/stereo/left/image_rect"][1]]
    assert len(images) == len(frames)
    for image, frame in zip(images, frames):
        assert bytes(image.data) == frame.left.tobytes()
    _, right_info = content["/stereo/right/camera_info"][1][0]
    assert right_info.p[3] == pytest.approx(-SYNTHETIC_CAMERA.fx * SYNTHETIC_CAMERA.baseline)


def test_play_node_record_round_trip(ros_context, input_bag, tmp_path):
    # Reliable inputs: the player's first messages are resent if the node's side of discovery
    # lags, as ros2 bag play does for bags recorded from reliable publishers.
    node = NodeProcess(tmp_path / "node.log", {"model": "sgbm", "max_disparity": 64,
                                               **reliable_inputs("/cam")}, "/cam")
    node.wait_ready()
    recorded = tmp_path / "outputs"
    recorder = subprocess.Popen([*CLI, "record", str(recorded), "--namespace", "/cam",
                                 "--count", str(5 * PAIRS), "--duration", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=ros_environment())
    clock_node = ros_context.create_node("clock_listener")
    clocks = []
    clock_node.create_subscription(Clock, "/clock", clocks.append, 10)
    spin = SpinThread(clock_node)
    try:
        assert recorder.stdout.readline().startswith(
            "waiting up to 10 s for a publisher on each of /cam/disparity")
        assert recorder.stdout.readline().startswith("recording /cam/disparity")
        time.sleep(0.5)  # the node's side of the discovery settles too
        played = subprocess.run([*CLI, "play", str(input_bag), "--clock", "--wait", "20"],
                                capture_output=True, text=True, timeout=120,
                                env=ros_environment())
        assert played.returncode == 0, played.stderr
        assert f"played {4 * PAIRS} messages" in played.stdout
        assert "had not acknowledged" not in played.stderr
        out, _ = recorder.communicate(timeout=90)
        assert recorder.returncode == 0, out
        assert f"recorded {5 * PAIRS} messages" in out, out + node.log()
    finally:
        if recorder.poll() is None:
            recorder.kill()
        spin.close()
        clock_node.destroy_node()
        assert node.stop() == 0
    bag_times = {t for _, (_, messages) in read_bag(input_bag).items() for t, _ in messages}
    clock_times = {c.clock.sec * 10**9 + c.clock.nanosec for c in clocks}
    assert clock_times and clock_times <= bag_times  # /clock follows bag time
    content = read_bag(recorded)
    assert {t: c[0] for t, c in content.items()} == {f"/cam/{t}": k
                                                     for t, k in OUTPUT_TYPES.items()}
    input_stamps = [m.header.stamp for _, m in read_bag(input_bag)["/cam/left/image_rect"][1]]
    for topic in OUTPUT_TYPES:
        stamps = [m.header.stamp for _, m in content[f"/cam/{topic}"][1]]
        assert stamps == input_stamps, topic  # original timestamps kept through play
    for _, depth in content["/cam/depth"][1]:
        assert abs(np.nanmedian(_depth(depth)) - 2.0) < 0.02


def test_record_keeps_its_bag_and_ends_when_the_middleware_teardown_hangs(ros_context,
                                                                         tmp_path):
    # A stopped recorder's teardown is where the Fast DDS deadlock (eProsima/Fast-DDS#6502) was
    # seen; without a bound its Ctrl-C hung for good. The bag is closed before the teardown.
    recorded = tmp_path / "outputs"
    output = tmp_path / "recorder.out"
    publisher_node = ros_context.create_node("outputs_for_the_recorder")
    for topic, kind in ROS_OUTPUT_TYPES.items():  # the recorder starts once it sees them
        publisher_node.create_publisher(kind, f"/hanging/{topic}", 10)
    try:
        with output.open("w") as sink:
            recorder = subprocess.Popen([*CLI, "record", str(recorded), "--namespace", "/hanging"],
                                        stdout=sink, stderr=subprocess.STDOUT, text=True,
                                        env=ros_environment(python_paths=(HANGING_TEARDOWN,)))
        deadline = time.monotonic() + 30
        while ("recording /hanging/disparity" not in output.read_text()
               and time.monotonic() < deadline):
            time.sleep(0.1)
    finally:
        publisher_node.destroy_node()
    recorder.send_signal(signal.SIGINT)
    assert_teardown_bounded(recorder, output.read_text, time.monotonic())
    assert f"recorded 0 messages into {recorded}" in output.read_text()
    assert read_bag(recorded) == {}  # a whole bag, readable


def test_play_warns_when_a_reliable_subscriber_stops_acknowledging(ros_context, input_bag,
                                                                 tmp_path):
    node = NodeProcess(tmp_path / "node.log", {"model": "sgbm", "max_disparity": 64,
                                               **reliable_inputs("/cam")}, "/cam")
    node.wait_ready()
    client = StereoClient("/cam", "stalled_listener")
    bag_stamps = sorted(stamp_ns(m.header)
                        for _, m in read_bag(input_bag)["/cam/left/image_rect"][1])
    # 4 s between the played sets: time to stop the node once it has answered the first.
    player = subprocess.Popen([*CLI, "play", str(input_bag), "--rate", "0.05", "--wait", "20",
                               "--ack-timeout", "1"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ros_environment())
    try:
        client.connect(probe_set(bag_stamps[0] - 10**9))
        assert client.wait_until(lambda: any(stamp_ns(m.header) == bag_stamps[0]
                                             for m in client.messages("disparity")), 30)
        node.process.send_signal(signal.SIGSTOP)  # matched, but acknowledges nothing more
        out, err = player.communicate(timeout=60)
    finally:
        node.process.send_signal(signal.SIGCONT)
        client.close()
        if player.poll() is None:
            player.kill()
        assert node.stop() == 0
    assert player.returncode == 0, err
    assert f"played {4 * PAIRS} messages" in out
    warning = "warning: a reliable subscriber had not acknowledged every message within 1 s on "
    [line] = [line for line in err.splitlines() if line.startswith(warning)]
    assert sorted(line[len(warning):].split(", ")) == sorted(INPUT_TYPES)


def test_process_writes_outputs_rosbags_can_read(input_bag, tmp_path):
    out = tmp_path / "processed"
    done = subprocess.run([*CLI, "process", str(input_bag), str(out), "--model", "sgbm",
                           "--max-disparity", "64", "--copy-inputs"],
                          capture_output=True, text=True, timeout=300, env=ros_environment())
    assert done.returncode == 0, done.stderr
    assert f"processed {PAIRS} stereo sets (0 rejected" in done.stdout
    # It said 'wrote 15 messages' of a bag that holds 27: the copied inputs were not counted.
    outputs, inputs = len(OUTPUT_TYPES) * PAIRS, len(INPUT_TYPES) * PAIRS
    assert done.stdout.rstrip().endswith(
        f"wrote {outputs} output messages and {inputs} copied input messages into {out}")
    content = read_bag(out)
    assert sum(len(messages) for _, messages in content.values()) == outputs + inputs
    expected = {**INPUT_TYPES, **{f"/cam/{t}": k for t, k in OUTPUT_TYPES.items()}}
    assert {t: c[0] for t, c in content.items()} == expected
    for topic in OUTPUT_TYPES:
        assert len(content[f"/cam/{topic}"][1]) == PAIRS
    for timestamp, disparity in content["/cam/disparity"][1]:
        stamp = disparity.header.stamp
        assert timestamp == stamp.sec * 10**9 + stamp.nanosec
        assert disparity.f == pytest.approx(FX) and disparity.t == pytest.approx(BASELINE)
    _, cloud = content["/cam/points2"][1][0]
    assert (cloud.height, cloud.width, cloud.point_step) == (120, 160, 16)
    assert abs(np.nanmedian(_depth(content["/cam/depth"][1][0][1])) - 2.0) < 0.02


def test_process_refuses_a_bag_without_stereo_topics(tmp_path, input_bag):
    # The message named no namespace, so /cam/left/image_rect in its list looked like a match.
    out = tmp_path / "x"
    command = [*CLI, "process", str(input_bag), str(out), "--model", "sgbm", "--max-disparity",
               "64", "--namespace"]
    done = subprocess.run([*command, "/other"], capture_output=True, text=True, timeout=120,
                          env=ros_environment())
    assert done.returncode == 2
    assert done.stderr == (
        f"stereo-depth bag: error: bag '{input_bag}': expected left/image_rect in namespace "
        f"/other (/other/left/image_rect), found none; topics: {', '.join(sorted(INPUT_TYPES))}\n")
    assert not out.exists()
    done = subprocess.run([*command, "/cam"], capture_output=True, text=True, timeout=120,
                          env=ros_environment())
    assert done.returncode == 0, done.stderr
    assert f"processed {PAIRS} stereo sets (0 rejected" in done.stdout


@pytest.mark.parametrize("command", ["make", "process", "record"])
def test_an_existing_output_bag_is_refused_before_any_work(ros_context, tmp_path, input_bag,
                                                           pair_files, command):
    # It ended in rosbags' WriterError traceback, for process after loading the network.
    existing, fresh = tmp_path / "existing", tmp_path / "fresh"
    shutil.copytree(input_bag, existing)
    before = tree(existing)
    inputs = [str(input_bag)] * (command == "process")
    options = {"make": pair_files, "process": ["--model", "sgbm", "--max-disparity", "64"],
               "record": ["--namespace", "/existing", "--duration", "0.2"]}[command]

    def run(out, *more):
        return subprocess.run([*CLI, command, *inputs, str(out), *options, *more],
                              capture_output=True, text=True, timeout=120, env=ros_environment())

    refused = (f"stereo-depth bag: error: output bag '{existing}' exists already and rosbags "
               f"does not overwrite: remove it or give another name\n")
    done = run(existing)
    assert (done.returncode, done.stderr) == (2, refused)
    if command == "process":  # weights that do not exist: not loaded, so not reported
        done = run(existing, "--model", "psmnet_dws", "--weights", str(tmp_path / "none.pt"))
        assert (done.returncode, done.stderr) == (2, refused)
    assert tree(existing) == before
    node = ros_context.create_node("outputs_for_the_fresh_recording")
    publish_outputs(node, "/existing")  # record starts at once, not after its wait
    try:
        done = run(fresh)
    finally:
        node.destroy_node()
    assert done.returncode == 0, done.stderr
    read_bag(fresh)  # a whole bag


def test_make_refuses_a_rate_that_is_not_above_zero(tmp_path, pair_files):
    # --rate 0 ended in ZeroDivisionError with half a bag written; --rate -5 was taken.
    out = tmp_path / "bag"
    for rate in ("0", "-5", "nan", "inf"):
        done = subprocess.run([*CLI, "make", str(out), *pair_files, "--rate", rate],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.splitlines()[-1] == (
            f"stereo-depth bag make: error: argument --rate: rate (Hz) must be a finite number "
            f"above 0, got {float(rate)}")
        assert not out.exists()
    done = subprocess.run([*CLI, "make", str(out), *pair_files, "--rate", "0.5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stamps = [t for t, _ in read_bag(out)["/stereo/left/image_rect"][1]]
    assert np.diff(stamps).tolist() == [2 * 10**9] * (PAIRS - 1)


@pytest.mark.parametrize("command, option, value, what", [
    ("play", "--rate", "nan", "rate (a speed factor)"),  # got past play's `rate <= 0`
    ("play", "--rate", "0", "rate (a speed factor)"),
    ("record", "--duration", "-1", "duration (s)"),  # 0 and below recorded until Ctrl-C
])
def test_play_and_record_refuse_rates_and_limits_not_above_zero(tmp_path, input_bag, command,
                                                                option, value, what):
    bag = input_bag if command == "play" else tmp_path / "out"
    done = subprocess.run([*CLI, command, str(bag), option, value], capture_output=True,
                          text=True, timeout=60, env=ros_environment())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"stereo-depth bag {command}: error: argument {option}: {what} must be a finite number "
        f"above 0, got {float(value)}")
    assert not (tmp_path / "out").exists()
    done = subprocess.run([*CLI, "record", str(tmp_path / "out"), "--count", "0"],
                          capture_output=True, text=True, timeout=60, env=ros_environment())
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == ("stereo-depth bag record: error: argument --count: 0 "
                                            "is below 1")


def test_record_says_it_waits_for_publishers_and_names_those_that_never_came(ros_context,
                                                                            tmp_path):
    # It waited up to 10 s in silence before --duration began, then said only 'recorded 0'.
    topics = [f"/partial/{t}" for t in ROS_OUTPUT_TYPES]
    node = ros_context.create_node("some_outputs_for_the_recorder")
    publish_outputs(node, "/partial", [t for t in ROS_OUTPUT_TYPES if t != "confidence"])
    out = tmp_path / "outputs"
    try:
        begin = time.monotonic()
        done = subprocess.run([*CLI, "record", str(out), "--namespace", "/partial",
                               "--duration", "0.2"], capture_output=True, text=True,
                              timeout=120, env=ros_environment())
        took = time.monotonic() - begin
    finally:
        node.destroy_node()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"waiting up to 10 s for a publisher on each of {', '.join(topics)}",
        f"recording {', '.join(topics)}", f"recorded 0 messages into {out}"]
    assert done.stderr == "warning: no publisher on /partial/confidence after 10 s; " \
                          "recording anyway\n"
    assert took > 10.2  # the duration counts from the end of the wait
    assert read_bag(out) == {}


@pytest.mark.parametrize("command", ["process", "play"])
def test_a_damaged_bag_is_named_with_the_readers_reason(tmp_path, input_bag, command):
    # Both ended in a rosbags traceback (AnyReaderError, ReaderError) instead of one line.
    damaged = {"metadata": "cannot be read: Invalid bag metadata",
               "storage": "cannot be read: File end magic is invalid"}
    for part, reason in damaged.items():
        bag = tmp_path / part
        shutil.copytree(input_bag, bag)
        if part == "metadata":
            (bag / "metadata.yaml").write_text("x\n")
        else:
            (storage,) = bag.glob("*.mcap")
            storage.write_bytes(storage.read_bytes()[:storage.stat().st_size // 2])
        arguments = [str(tmp_path / f"out_{part}"), "--model", "sgbm"] * (command == "process")
        done = subprocess.run([*CLI, command, str(bag), *arguments], capture_output=True,
                              text=True, timeout=120, env=ros_environment())
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"stereo-depth bag: error: bag '{bag}' {reason}")
        assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def compressed_bag(tmp_path_factory, pair_files):
    bag = tmp_path_factory.mktemp("compressed") / "input"
    done = subprocess.run([*CLI, "make", str(bag), *pair_files, "--compressed", "jpeg",
                           "--namespace", "/camc"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(jpeg CompressedImage)" in done.stdout
    return bag


def test_compressed_bag_holds_what_image_transport_publishes(compressed_bag):
    content = read_bag(compressed_bag)
    assert {t: c[0] for t, c in content.items()} == {
        "/camc/left/image_rect/compressed": "sensor_msgs/msg/CompressedImage",
        "/camc/right/image_rect/compressed": "sensor_msgs/msg/CompressedImage",
        "/camc/left/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camc/right/camera_info": "sensor_msgs/msg/CameraInfo"}
    _, image = content["/camc/left/image_rect/compressed"][1][0]
    assert image.format == "rgb8; jpeg compressed bgr8"
    assert bytes(image.data[:2]) == b"\xff\xd8" and bytes(image.data[-2:]) == b"\xff\xd9"


def test_process_and_play_a_compressed_bag(ros_context, compressed_bag, tmp_path):
    from stereo_depth_node.ros.frame import InputTopics

    out = tmp_path / "processed"
    done = subprocess.run([*CLI, "process", str(compressed_bag), str(out), "--model", "sgbm",
                           "--max-disparity", "64"],
                          capture_output=True, text=True, timeout=300, env=ros_environment())
    assert done.returncode == 0, done.stderr
    sets = len(read_bag(compressed_bag)["/camc/left/camera_info"][1])
    assert f"processed {sets} stereo sets (0 rejected" in done.stdout
    offline = {stamp_ns(m.header): _depth(m) for _, m in read_bag(out)["/camc/depth"][1]}
    assert len(offline) == sets
    assert all(abs(np.nanmedian(depth) - 2.0) < 0.02 for depth in offline.values())

    node = NodeProcess(tmp_path / "node.log", {
        "model": "sgbm", "max_disparity": 64, "image_transport": "compressed",
        **reliable_inputs("/camc", InputTopics("compressed"))}, "/camc")
    node.wait_ready()
    client = StereoClient("/camc", "compressed_bag_listener", InputTopics("compressed"))
    try:
        # A set like the bag's, stamped a second before it, until the node answers it: the
        # node's publishers have then matched this listener too, so no played output is lost.
        probe_ns = min(offline) - 10**9
        client.connect(probe_set(probe_ns, "jpeg"))
        assert client.wait_until(lambda: any(stamp_ns(m.header) == probe_ns
                                             for m in client.messages("depth")), 10)
        played = subprocess.run([*CLI, "play", str(compressed_bag), "--wait", "20"],
                                capture_output=True, text=True, timeout=120,
                                env=ros_environment())
        assert played.returncode == 0, played.stderr
        assert "had not acknowledged" not in played.stderr
        from_bag = lambda: [m for m in client.messages("depth")  # noqa: E731
                            if stamp_ns(m.header) in offline]
        assert client.wait_until(lambda: len(from_bag()) >= sets, 60), node.log()
    finally:
        client.close()
        assert node.stop() == 0
    for message in from_bag():
        # The live node and the offline tool give the same depth from the same JPEG bytes.
        np.testing.assert_array_equal(_depth(message), offline[stamp_ns(message.header)])


def test_process_rectifies_a_raw_camera_bag(tmp_path):
    from ros_harness import raw_stereo_set
    from scenes import raw_view
    from stereo_depth_node.estimator import StereoEstimator
    from stereo_depth_node.rectification import example_camera_models
    from stereo_depth_node.ros.bag import BagWriter, process_bag

    models = example_camera_models(160, 120, FX, BASELINE, "equidistant")
    left, right = render_plane_pair(120, 160, 30.0, seed=31)  # 2.000 m once rectified
    raw = [raw_view(image, model) for image, model in zip((left, right), models)]
    with BagWriter(tmp_path / "raw") as writer:
        for index in range(2):
            stamp_s = 10.0 + index
            for topic, message in raw_stereo_set(*raw, *models, stamp_s, "png").items():
                writer.write(f"/rig/{topic}", message, round(stamp_s * 1e9))
    counts = process_bag(tmp_path / "raw", tmp_path / "out", StereoEstimator("sgbm", None, 64),
                         rectify=True)
    assert counts["sets"] == 2 and counts["rejected"] == 0
    depths = read_bag(tmp_path / "out")["/rig/depth"][1]
    for _, depth in depths:
        assert abs(np.nanmedian(_depth(depth)) - 2.0) < 0.02


def test_process_names_a_pair_that_is_no_rectified_pair_once(tmp_path):
    from stereo_depth_node.estimator import StereoEstimator
    from stereo_depth_node.ros.bag import BagWriter, process_bag

    with BagWriter(tmp_path / "in") as writer:
        for index in range(3):
            stamp = round((10.0 + index) * 1e9)
            messages = probe_set(stamp)
            p = list(messages["right/camera_info"].p)
            p[6] += 5.0  # the right principal point's row 5 px lower: the rows do not align
            messages["right/camera_info"].p = p
            for topic, message in messages.items():
                writer.write(f"/cam/{topic}", message, stamp)
    errors = []
    counts = process_bag(tmp_path / "in", tmp_path / "out", StereoEstimator("sgbm", None, 64),
                         on_error=errors.append)
    assert counts["sets"] == 3 and counts["rejected"] == 0
    assert errors == ["set at 10.000000 s: left/camera_info and right/camera_info describe no "
                      "rectified horizontal pair (in the images' pixels): cy 59.5 against 64.5 "
                      "(P[6]). Matching runs along rows and depth is (P_l[3] - P_r[3]) / d, so "
                      "depth is off where the views differ: publish the camera_infos of the "
                      "rectified pair"]
