"""A client of the node: publishes stereo sets and collects every output (demo, tests, tools)."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from .frame import DEFAULT_INPUTS, OUTPUT_TYPES, InputTopics
from .messages import stamp_ns
from .spin_thread import SpinThread


class StereoClient:
    """Own rclpy node, spun in a background thread, talking to the node under `namespace`.
    Without `keep_messages` it remembers only when each output arrived and its stamp (a
    benchmark's thousands of point clouds would fill the memory), and messages are None."""

    def __init__(self, namespace: str = "/stereo", name: str = "stereo_client",
                 topics: InputTopics = DEFAULT_INPUTS, keep_messages: bool = True) -> None:
        self.node = Node(name)
        self.keep_messages = keep_messages
        self.namespace = namespace.rstrip("/")
        self.topics = topics
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.inputs = {topic: self.node.create_publisher(msg_type, f"{self.namespace}/{topic}",
                                                         reliable)
                       for topic, msg_type in topics.types.items()}
        self._received: dict[str, list] = defaultdict(list)
        self._lock = threading.Lock()
        self._subscriptions = [
            self.node.create_subscription(msg_type, f"{self.namespace}/{topic}",
                                          self._collector(topic), reliable)
            for topic, msg_type in OUTPUT_TYPES.items()]
        self._spin = SpinThread(self.node)

    def _collector(self, topic: str) -> Callable:
        def collect(msg) -> None:
            arrived = time.monotonic()
            with self._lock:
                self._received[topic].append(
                    (arrived, msg.header, msg if self.keep_messages else None))
        return collect

    def messages(self, topic: str) -> list:
        with self._lock:
            return [msg for _, _, msg in self._received[topic]]

    def arrivals(self, topic: str) -> list[tuple[float, int]]:
        """(monotonic arrival time, header stamp in ns) of every output on `topic` so far."""
        with self._lock:
            return [(t, stamp_ns(header)) for t, header, _ in self._received[topic]]

    def arrival(self, topic: str, stamp) -> tuple[float, object] | None:
        """(monotonic arrival time, message) of the output with this header stamp."""
        with self._lock:
            return next(((t, m) for t, header, m in self._received[topic]
                         if header.stamp == stamp), None)

    def wait_for_subscribers(self, timeout: float = 30.0) -> None:
        if not self.wait_until(lambda: all(p.get_subscription_count() > 0
                                           for p in self.inputs.values()), timeout):
            raise TimeoutError(f"no node subscribes to {self.namespace}/{self.topics.names[0]} "
                               f"etc.")

    def connect(self, probe: dict[str, object], timeout: float = 60.0,
                resend_s: float = 0.5) -> int:
        """Publish `probe` until the node answers it; returns how many times it was sent.

        Discovery completes on the two sides at different moments: a best-effort message sent as
        soon as our publisher sees the node's subscription can still be dropped by a reader that
        has not matched us yet. One answered set proves the whole path works.
        """
        self.wait_for_subscribers(timeout)
        stamp = probe[self.topics.names[0]].header.stamp
        deadline = time.monotonic() + timeout
        sent = 0
        while time.monotonic() < deadline:
            self.publish(probe)
            sent += 1
            if self.wait_until(lambda: self.arrival("disparity", stamp) is not None, resend_s):
                return sent
        raise TimeoutError(f"the node under {self.namespace} never answered a stereo set")

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def publish(self, messages: dict[str, object]) -> None:
        """Publish one set ({'left/image_rect': ..., ...}; a topic left out is not published);
        infos first, as cameras do."""
        names = self.topics.names
        for topic in (*names[2:], *names[:2]):
            if topic in messages:
                self.inputs[topic].publish(messages[topic])

    def send_and_wait(self, messages: dict[str, object], topics=("disparity",),
                      timeout: float = 60.0) -> dict[str, object]:
        """Publish a set and wait for the outputs stamped like it; raises TimeoutError."""
        stamp = messages[self.topics.names[0]].header.stamp
        self.publish(messages)
        if not self.wait_until(lambda: all(self.arrival(t, stamp) for t in topics), timeout):
            missing = [t for t in topics if not self.arrival(t, stamp)]
            raise TimeoutError(f"no {', '.join(missing)} for the set stamped "
                               f"{stamp.sec}.{stamp.nanosec:09d}")
        return {t: self.arrival(t, stamp)[1] for t in topics}

    def close(self) -> None:
        self._spin.close()
        self.node.destroy_node()
