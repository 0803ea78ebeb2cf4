"""Running the real node in its own process and talking to it over real DDS (loopback only)."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import importlib.util

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from stereo_depth_node.camera import StereoCamera
from stereo_depth_node.ros.client import OUTPUT_TYPES, StereoClient  # noqa: F401 (re-export)
from stereo_depth_node.ros.conversions import array_to_image_fields
from stereo_depth_node.ros import node_process
from stereo_depth_node.ros.frame import DEFAULT_INPUTS, InputTopics
from stereo_depth_node.ros.node_process import (NODE_COMMAND,  # noqa: F401 (re-export)
                                                reliable_inputs)
from stereo_depth_node.ros.teardown import TEARDOWN_LIMIT_S
from stereo_depth_node.ros.messages import image_message as input_image, stereo_messages

FRAME = "left_camera_optical_frame"
# message_filters' Python package, unchanged (not on PyPI); every ROS installation has it.
ROS_PYTHON = Path(__file__).resolve().parents[2] / "shared" / "ros_python"
# How the node's inputs are synchronised: as this environment has it (internal without a ROS
# installation), or with the real message_filters on the node's PYTHONPATH.
SYNC_MODES = ("default", "message_filters")


def expected_synchronizer(mode: str) -> str:
    if mode == "message_filters" or importlib.util.find_spec("message_filters") is not None:
        return "message_filters"
    return "internal"


def ros_environment(mode: str = "default", python_paths: tuple[Path, ...] = ()
                    ) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a crash in a node process prints its Python stack
    paths = [*map(str, python_paths)]
    if mode == "message_filters":
        if not (ROS_PYTHON / "message_filters" / "__init__.py").is_file():
            raise FileNotFoundError(f"message_filters missing under {ROS_PYTHON}")
        paths.append(str(ROS_PYTHON))
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    return env


class NodeProcess(node_process.NodeProcess):
    """The package's node process in a test's environment (`mode` and `python_paths` as in
    ros_environment); its start-up must name the synchroniser that mode runs."""

    def __init__(self, log_path: Path, parameters: dict[str, Any] | None = None,
                 namespace: str = "/stereo", mode: str = "default",
                 python_paths: tuple[Path, ...] = (), params_file: Path | None = None) -> None:
        self.synchronizer = expected_synchronizer(mode)
        super().__init__(namespace, parameters or {}, log_path,
                         env=ros_environment(mode, python_paths), params_file=params_file)

    def wait_for_log(self, text: str, timeout: float = 60.0, level: str | None = None) -> bool:
        """Whether the log holds `text` within `timeout`; with `level` (INFO, WARN, ...), on a
        line logged at that severity."""
        def found() -> bool:
            log = self.log()
            if level is None:
                return text in log
            return any(line.startswith(f"[{level}] ") and text in line
                       for line in log.splitlines())

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found():
                return True
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        return found()

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds to the start-up line, which must name the synchroniser this mode runs."""
        seconds = super().wait_ready(timeout)
        if f"sync ({self.synchronizer})" not in self.log():
            self.stop()
            raise RuntimeError(f"the node does not synchronise with {self.synchronizer}:\n"
                               f"{self.log()}")
        return seconds

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        return super().stop(sig, timeout)


class NodesUnderTest:
    """Nodes started for tests, each with a client that has seen it answer; `close` stops them
    all and returns their exit codes (0 is a clean stop)."""

    def __init__(self) -> None:
        self._started: list[NodeProcess | StereoClient] = []

    def start(self, log_path: Path, parameters: dict[str, Any], namespace: str,
              probe: dict[str, object], mode: str = "default",
              python_paths: tuple[Path, ...] = (), topics: InputTopics = DEFAULT_INPUTS
              ) -> tuple[NodeProcess, StereoClient, int]:
        """The node, its client and how many times the probe set was sent until answered."""
        process = NodeProcess(log_path, parameters, namespace, mode, python_paths)
        process.wait_ready()
        self._started.append(process)
        client = StereoClient(namespace, f"client{namespace.replace('/', '_')}", topics)
        self._started.append(client)
        return process, client, client.connect(probe, resend_s=3.0)

    def close(self) -> list[int]:
        codes = []
        for item in reversed(self._started):
            if isinstance(item, StereoClient):
                item.close()
            else:
                codes.append(item.stop())
        return codes


def as_remapped(text: str, namespace: str) -> str:
    """An expected log text with the node's input names as it logs them: resolved into its
    namespace (remapped), e.g. left/image_rect -> /ns/left/image_rect."""
    return re.sub(r"\b(left|right)/(image_rect|image_raw|camera_info)", rf"{namespace}/\g<0>",
                  text)


def header(stamp_s: float) -> Header:
    header = Header(frame_id=FRAME)
    header.stamp.sec, header.stamp.nanosec = divmod(round(stamp_s * 1e9), 1_000_000_000)
    return header


def image_message(array: np.ndarray, encoding: str, stamp_s: float) -> Image:
    return Image(header=header(stamp_s), **array_to_image_fields(array, encoding))


def camera_for(width: int, height: int, fx: float = 500.0, baseline: float = 0.12
                ) -> StereoCamera:
    return StereoCamera.centred(width, height, fx, baseline)


def stereo_set(left: np.ndarray, right: np.ndarray, stamp_s: float, fx: float = 500.0,
               baseline: float = 0.12) -> dict[str, object]:
    """The four input messages of one rgb8 pair, all stamped `stamp_s`."""
    camera = camera_for(left.shape[1], left.shape[0], fx, baseline)
    return stereo_messages(left, right, camera, round(stamp_s * 1e9), FRAME)


def raw_stereo_set(left, right, left_model, right_model, stamp_s: float,
                   codec: str | None = None) -> dict[str, object]:
    """The four input messages of one raw (unrectified) pair with the calibration of two
    rectification.CameraModel, for a node with rectify:=true (images compressed with `codec`)."""
    from sensor_msgs.msg import CameraInfo

    suffix = "/compressed" if codec else ""
    messages = {f"left/image_raw{suffix}": input_image(left, codec),
                f"right/image_raw{suffix}": input_image(right, codec)}
    for side, model in (("left", left_model), ("right", right_model)):
        info = CameraInfo(width=model.width, height=model.height,
                          distortion_model=model.distortion_model, d=list(model.d),
                          k=list(model.k), r=list(model.r), p=list(model.p),
                          binning_x=model.binning_x, binning_y=model.binning_y)
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = model.roi
        messages[f"{side}/camera_info"] = info
    for message in messages.values():
        message.header = header(stamp_s)
    return messages


# Segment names: fastdds_ since Fast DDS 3 (Kilted), fastrtps_ in Fast DDS 2 (Humble, Jazzy).
SEGMENT_PREFIXES = ("fastdds_", "fastrtps_")


def fastdds_segments(pid: int) -> set[str]:
    """The Fast DDS segments in /dev/shm that process `pid` has mapped (none where /proc cannot
    be read). Port files (fastdds_port*) are left out: every participant of a domain shares them,
    and they stay by design."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    names = {line.split()[-1].removeprefix("/dev/shm/") for line in maps.splitlines()}
    return {f"/dev/shm/{name}" for name in names
            if name.startswith(SEGMENT_PREFIXES)
            and not name.startswith(tuple(f"{p}port" for p in SEGMENT_PREFIXES))}


def abandoned_segments(segments: set[str]) -> set[str]:
    """Those of `segments` (fastdds_segments) still in /dev/shm whose creator has died, as
    `fastdds shm clean` decides: a live creator holds an flock on the segment's `_el` file."""
    abandoned = set()
    for path in segments:
        if not Path(path).exists():
            continue
        try:
            descriptor = os.open(f"{path}_el", os.O_RDWR)
        except OSError:
            continue  # being removed by its creator
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            abandoned.add(path)
        except BlockingIOError:
            pass  # its creator is alive
        finally:
            os.close(descriptor)
    return abandoned


def remove_segments(paths: set[str]) -> None:
    """Remove segments (abandoned_segments) with their `_el` files, as `fastdds shm clean` does."""
    for path in paths:
        Path(path).unlink(missing_ok=True)
        Path(f"{path}_el").unlink(missing_ok=True)


# On a process's PYTHONPATH: rclpy.try_shutdown never returns and holds the GIL, as a Fast DDS
# participant deletion that deadlocks (eProsima/Fast-DDS#6502) would.
HANGING_TEARDOWN = Path(__file__).with_name("hanging_teardown")


def assert_teardown_bounded(process: subprocess.Popen, output: Callable[[], str],
                            started: float) -> None:
    """`process`, whose teardown began to hang at `started`, left with code 1 about
    TEARDOWN_LIMIT_S later, its stacks in `output()` with the hanging call in them. The segments
    its participant, never deleted, abandons are removed."""
    time.sleep(1.0)  # inside the hang: the participant and its segments still exist
    segments = fastdds_segments(process.pid)
    try:
        process.wait(TEARDOWN_LIMIT_S + 5)
    except subprocess.TimeoutExpired:
        process.kill()  # the bound failed: the assertions below say so
        process.wait()
    elapsed = time.monotonic() - started
    remove_segments(abandoned_segments(segments))
    log = output()
    assert process.returncode == 1, log[-3000:]
    assert TEARDOWN_LIMIT_S - 0.5 < elapsed < TEARDOWN_LIMIT_S + 3, (elapsed, log[-3000:])
    assert f"Timeout (0:00:0{TEARDOWN_LIMIT_S:.0f})!" in log, log[-3000:]
    assert "in _deadlocked_teardown" in log, log[-3000:]
