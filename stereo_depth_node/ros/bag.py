"""rosbag2 tools without `ros2 bag`: make, play, record and process, on the rosbags library.

Messages travel as the CDR bytes rosbag2 stores: play publishes them serialized with rclpy, record
writes what rclpy receives serialized, and process converts them with rclpy's serialization (no
DDS involved), so the original headers and timestamps are kept byte for byte.
"""
from __future__ import annotations

import importlib
import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..camera import StereoCamera
from ..errors import InputError
from ..estimator import StereoEstimator
from ..pipeline import OutputSettings
from ..rectification import Rectifier
from .acknowledgements import unacknowledged
from .conversions import ImageDecoder
from .frame import (IMAGE_TRANSPORTS, OUTPUT_TOPICS, InputTopics, pair_mismatch_text,
                    process_stereo_messages)
from .messages import stamp_ns, stereo_messages

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
DISCOVERY_SETTLE_S = 0.5


def message_class(msgtype: str) -> type:
    """The rclpy message class for 'pkg/msg/Type'."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def msgtype_name(message_type: type) -> str:
    """'pkg/msg/Type' of an rclpy message class (the inverse of message_class)."""
    return f"{message_type.__module__.split('.')[0]}/msg/{message_type.__name__}"


def check_new_bag(path: str | os.PathLike) -> None:
    """Refuse an output bag that exists: rosbags never overwrites one, and saying so before any
    work leaves what is there untouched."""
    if os.path.lexists(path):
        raise InputError(f"output bag {os.fspath(path)!r} exists already and rosbags does not "
                         f"overwrite: remove it or give another name")


def check_above_zero(value: float, what: str) -> float:
    """`value` if it is finite and above 0: rates divide time by it, and a limit that is not
    above 0 would never end."""
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what} must be a finite number above 0, got {value}")
    return value


class BagWriter:
    """Writes rclpy messages into a new rosbag2 folder, adding connections as topics appear."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        if storage not in STORAGE:
            raise InputError(f"storage {storage!r} is not one of {', '.join(STORAGE)}")
        check_new_bag(path)
        # Format 8, whose metadata holds each topic's QoS as one YAML string: Humble's rosbag2
        # reads only that form (version 9's list fails there with "bad conversion"), and Jazzy
        # and later read both.
        self._writer = Writer(Path(path), version=8, storage_plugin=STORAGE[storage])
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.count = 0

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, data: bytes) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                                   typestore=TYPESTORE)
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self.count += 1

    def write(self, topic: str, message: object, timestamp_ns: int) -> None:
        self.write_raw(topic, msgtype_name(type(message)), timestamp_ns,
                       serialize_message(message))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RawMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


@contextmanager
def open_bag(path: str | os.PathLike) -> Iterator[AnyReader]:
    """A reader on the bag at `path`. A bag that is missing, or that rosbags cannot read (its
    metadata.yaml or storage file damaged), is an InputError naming it, also when the damage is
    met while its messages are read."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"bag {os.fspath(path)!r} does not exist")
    try:
        with AnyReader([path], default_typestore=TYPESTORE) as reader:
            yield reader
    except (AnyReaderError, ReaderError) as exc:
        raise InputError(f"bag {os.fspath(path)!r} cannot be read: {exc}") from exc


def read_raw(path: str | os.PathLike, topics: Iterable[str] | None = None
             ) -> Iterator[RawMessage]:
    """Every message of the bag in time order, as stored."""
    with open_bag(path) as reader:
        wanted = [c for c in reader.connections if topics is None or c.topic in set(topics)]
        for connection, timestamp, data in reader.messages(connections=wanted):
            yield RawMessage(connection.topic, connection.msgtype, timestamp, bytes(data))


# --- make ---------------------------------------------------------------------------------------
def make_bag(out: str | os.PathLike, pairs: Iterable[tuple[np.ndarray, np.ndarray]],
             camera: StereoCamera, rate_hz: float = 10.0, namespace: str = "/stereo",
             frame_id: str = "left_camera_optical_frame", start_ns: int = 1_700_000_000 * 10**9,
             storage: str = "mcap", codec: str | None = None) -> int:
    """A rosbag2 of stereo pairs with camera_info at `rate_hz`; returns the number of pairs.

    With `codec` (jpeg, png) the images are stored as image_transport's compressed transport
    publishes them: CompressedImage on '<image topic>/compressed'.
    """
    check_above_zero(rate_hz, "rate (Hz)")
    count = 0
    with BagWriter(out, storage) as writer:
        for index, (left, right) in enumerate(pairs):
            stamp = start_ns + round(index * 1e9 / rate_hz)
            messages = stereo_messages(left, right, camera, stamp, frame_id, codec)
            for topic, message in messages.items():
                writer.write(f"{namespace.rstrip('/')}/{topic}", message, stamp)
            count += 1
    return count


# --- play ---------------------------------------------------------------------------------------
class Played(NamedTuple):
    sent: int
    unacknowledged: list[str]  # topics a reliable subscriber had not acknowledged in time


def play_bag(node, path: str | os.PathLike, rate: float = 1.0, loop: bool = False,
             clock: bool = False, stop: threading.Event | None = None,
             qos_depth: int = 10, wait_for_subscribers_s: float = 0.0,
             ack_timeout_s: float = 5.0) -> Played:
    """Publish every message of the bag on its topic with the bag's timing.

    Messages go out as stored (original header stamps); with `clock`, /clock follows bag time.
    With `wait_for_subscribers_s`, playing starts once every topic has a subscriber (or that
    time has passed), plus a short settle: discovery completes on the subscriber's side a little
    after the publisher's, and a best-effort subscriber misses what is sent in between.
    A reliable subscriber gets it resent once its side has matched, so after the last message
    the player waits up to `ack_timeout_s` until every reliable subscriber has acknowledged all.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    check_above_zero(rate, "rate (a speed factor)")
    stop = stop or threading.Event()
    messages = list(read_raw(path))
    if not messages:
        raise InputError(f"bag {os.fspath(path)!r} holds no messages")
    qos = QoSProfile(depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
    publishers = {m.topic: node.create_publisher(message_class(m.msgtype), m.topic, qos)
                  for m in messages}
    clock_publisher = node.create_publisher(Clock, "/clock", 10) if clock else None
    if wait_for_subscribers_s > 0:
        deadline = time.monotonic() + wait_for_subscribers_s
        waiting = [*publishers.values(), *([clock_publisher] if clock_publisher else [])]
        while time.monotonic() < deadline and not stop.is_set() and not all(
                p.get_subscription_count() for p in waiting):
            time.sleep(0.05)
        time.sleep(DISCOVERY_SETTLE_S)
    sent = 0
    while True:
        first = messages[0].timestamp_ns
        start = time.monotonic()
        for message in messages:
            due = start + (message.timestamp_ns - first) / 1e9 / rate
            while not stop.is_set():
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(remaining, 0.01))
            if stop.is_set():
                return Played(sent, [])
            if clock_publisher is not None:
                now = Clock()
                now.clock.sec, now.clock.nanosec = divmod(message.timestamp_ns, 1_000_000_000)
                clock_publisher.publish(now)
            publishers[message.topic].publish(message.data)
            sent += 1
        if not loop:
            break
    # Exiting sooner would take the resends a late-matching reliable subscriber asks for.
    return Played(sent, unacknowledged(publishers, ack_timeout_s))


# --- record -------------------------------------------------------------------------------------
class Recorder:
    """Subscribes to topics (serialized, no conversion) and writes what arrives into a bag."""

    def __init__(self, node, out: str | os.PathLike, topics: dict[str, str],
                 storage: str = "mcap") -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self._writer = BagWriter(out, storage)
        self._lock = threading.Lock()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._subscriptions = [
            node.create_subscription(message_class(msgtype), topic,
                                     self._callback(topic, msgtype), qos, raw=True)
            for topic, msgtype in topics.items()]
        self._clock = node.get_clock()

    def _callback(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            with self._lock:
                self._writer.write_raw(topic, msgtype, self._clock.now().nanoseconds, data)
        return write

    @property
    def count(self) -> int:
        return self._writer.count

    def close(self) -> None:
        with self._lock:
            self._writer.close()


# --- process ------------------------------------------------------------------------------------
def _matching(available: list[str], suffix: str, namespace: str | None) -> list[str]:
    if namespace is not None:
        return [t for t in available if t == f"{namespace.rstrip('/')}/{suffix}"]
    return [t for t in available if t == f"/{suffix}" or t.endswith(f"/{suffix}")]


def _input_topics(path: str | os.PathLike, namespace: str | None, rectify: bool
                  ) -> tuple[InputTopics, dict[str, str]]:
    """Which inputs the bag holds (raw Image or CompressedImage) and, for each input name
    (left/image_rect, ...), its topic in the bag."""
    with open_bag(path) as reader:
        available = sorted({c.topic for c in reader.connections})
    candidates = [InputTopics(transport, rectify) for transport in IMAGE_TRANSPORTS]
    topics = next((c for c in candidates if _matching(available, c.names[0], namespace)),
                  candidates[0])
    found = {}
    for name in topics.names:
        matches = _matching(available, name, namespace)
        if len(matches) != 1:
            raise InputError(f"bag {os.fspath(path)!r}: {_expected(name, namespace)}, "
                             f"found {matches or 'none'}; topics: {', '.join(available)}")
        found[name] = matches[0]
    return topics, found


def _expected(name: str, namespace: str | None) -> str:
    # With a namespace only the one topic counts, so a listed topic elsewhere is not a match.
    if namespace is None:
        return f"expected one topic ending in {name}"
    return f"expected {name} in namespace {namespace} ({namespace.rstrip('/')}/{name})"


def process_bag(source: str | os.PathLike, out: str | os.PathLike, estimator: StereoEstimator,
                settings: OutputSettings | None = None, namespace: str | None = None,
                storage: str = "mcap", copy_inputs: bool = False,
                on_error: Callable[[str], None] = print, rectify: bool = False
                ) -> dict[str, int]:
    """Run the node's processing on every exactly synchronised set of a bag, offline.

    Outputs go to '<namespace>/disparity' etc. next to the inputs, stamped with the left image's
    time; with `copy_inputs` the inputs are copied too. Images may be Image or CompressedImage
    (whichever the bag holds); with `rectify` they are raw (`image_raw`) and rectified from their
    camera_info, as the node does. Returns counts of sets, output messages ('messages') and
    copied input messages ('copied').
    """
    inputs, topics = _input_topics(source, namespace, rectify)
    left_name = inputs.names[0]
    prefix = topics[left_name][:-len(left_name)]
    by_topic = {topic: suffix for suffix, topic in topics.items()}
    rectifier = Rectifier() if rectify else None
    pending: dict[int, dict[str, object]] = {}
    counts = {"sets": 0, "rejected": 0, "unmatched": 0, "messages": 0, "copied": 0}
    publish = {flag: True for flag in ("publish_disparity", "publish_depth", "publish_points",
                                       "publish_confidence")}
    decoder = ImageDecoder(on_error)
    settings = settings or OutputSettings()
    told: set[str] = set()  # calibration warnings, each said once
    with BagWriter(out, storage) as writer:
        for raw in read_raw(source, by_topic):
            suffix = by_topic[raw.topic]
            message = deserialize_message(raw.data, message_class(raw.msgtype))
            if copy_inputs:
                writer.write_raw(raw.topic, raw.msgtype, raw.timestamp_ns, raw.data)
                counts["copied"] += 1
            stamp = stamp_ns(message.header)
            group = pending.setdefault(stamp, {})
            group[suffix] = message
            if len(group) < len(inputs.names):
                continue
            del pending[stamp]
            for older in [s for s in pending if s < stamp]:
                counts["unmatched"] += len(pending.pop(older))
            try:
                left, right, left_info, right_info = (group[name] for name in inputs.names)
                result = process_stereo_messages(
                    estimator, decoder, left, right, left_info, right_info,
                    settings, publish, inputs, rectifier)
            except InputError as exc:
                counts["rejected"] += 1
                on_error(f"set at {stamp / 1e9:.6f} s skipped: {exc}")
                continue
            if result.camera_error:
                on_error(f"set at {stamp / 1e9:.6f} s: depth and points skipped: "
                         f"{result.camera_error}")
            warnings = []
            if result.search_range is not None:
                note, warn = result.search_range.note(settings.min_depth, settings.max_depth)
                if warn:
                    warnings.append(note)
            if result.pair_mismatch:
                warnings.append(pair_mismatch_text(inputs, result.pair_mismatch))
            for text in warnings:
                if text not in told:
                    told.add(text)
                    on_error(f"set at {stamp / 1e9:.6f} s: {text}")
            for topic in OUTPUT_TOPICS:
                if topic in result.messages:
                    writer.write(prefix + topic, result.messages[topic], stamp)
                    counts["messages"] += 1
            counts["sets"] += 1
    return counts
