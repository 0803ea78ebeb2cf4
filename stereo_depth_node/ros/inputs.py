"""The node's four synchronised input subscriptions: through message_filters where it imports (every
ROS installation), else through this package's own synchroniser (a pip-only install)."""
from __future__ import annotations

import copy
from typing import Callable

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions

from .frame import InputTopics
from .messages import stamp_ns
from .sync import PartnerTracker, TimeSynchronizer, Unmatched

try:  # message_filters is not on PyPI; a ROS installation has it
    import message_filters
except ImportError:
    message_filters = None


def subscribed_topics(node: Node, topics: InputTopics) -> list[str]:
    """The names to subscribe to. A compressed stream lives at '<image topic>/compressed' of the
    image topic after remapping (image_transport's rule), so a remap of `left/image_rect` also
    moves `left/image_rect/compressed`."""
    if not topics.compressed:
        return list(topics.names)
    images = [node.resolve_topic_name(base) + "/compressed" for base in topics.image_bases]
    return [*images, *topics.names[2:]]


# A stream whose stamps go back by more than this has restarted (a bag played in a loop, a camera
# driver restarted); smaller steps back are reordering and go to the synchroniser as they are.
RESTART_JUMP_NS = 1_000_000_000


class StereoInputs:
    """Subscribes to the input topics and calls `on_set(left, right, left_info, right_info)`.

    Every message passes a gate before it is synchronised. There a PartnerTracker sees it, so
    messages that never make a set reach `on_unmatched` whichever synchroniser runs. A message
    stamped before 1970 is refused through `on_rejected` (message_filters cannot take it and would
    stop the executor). A stamp that goes back by more than RESTART_JUMP_NS empties the
    synchroniser's queues (`on_restart` says so): message_filters makes room in a full queue by
    dropping the *oldest stamp*, which after a jump back is every new message, so a looping bag
    left entries of the first pass behind that blocked every later set.
    """

    def __init__(self, node: Node, topics: InputTopics, approximate: bool, tolerance_s: float,
                 queue_size: int, overrides: QoSOverridingOptions, on_set: Callable[..., None],
                 on_unmatched: Callable[[Unmatched], None], on_rejected: Callable[[str], None],
                 on_restart: Callable[[str], None]) -> None:
        self.approximate = approximate
        self.tolerance_s = tolerance_s if approximate else None
        self.tracker = PartnerTracker(len(topics.names), queue_size, on_unmatched)
        self._on_set, self._on_rejected, self._on_restart = on_set, on_rejected, on_restart
        self._newest: list[int | None] = [None] * len(topics.names)
        self.subscribed = subscribed_topics(node, topics)
        # As remapped: what the node's texts name.
        self.names = tuple(node.resolve_topic_name(topic) for topic in self.subscribed)
        types = list(topics.types.values())
        if message_filters is not None:
            self.backend = "message_filters"
            # The node subscribes itself and feeds message_filters' SimpleFilters: the
            # signature of message_filters.Subscriber changed between releases (some 2025 ones
            # take node, type, topic and qos_profile only, so qos_overriding_options would be a
            # TypeError), and the synchroniser is the part a robot's user expects.
            self._gates = [message_filters.SimpleFilter() for _ in types]
            forwards = [gate.signalMessage for gate in self._gates]
            self._synchronizer = (
                message_filters.ApproximateTimeSynchronizer(self._gates, queue_size, tolerance_s)
                if approximate else message_filters.TimeSynchronizer(self._gates, queue_size))
            self._synchronizer.registerCallback(self._emit)
        else:
            self.backend = "internal"
            self._synchronizer = TimeSynchronizer(len(types), queue_size, self.tolerance_s,
                                                  self._emit)
            forwards = [self._internal(index) for index in range(len(types))]
        # A profile of its own for each: rclpy writes a topic's qos_overrides into the profile
        # object it is given, which would carry one topic's override to the topics after it.
        self._subscriptions = [
            node.create_subscription(msg_type, topic, self._gated(index, forward),
                                     copy.copy(qos_profile_sensor_data),
                                     qos_overriding_options=overrides)
            for index, (topic, msg_type, forward) in enumerate(
                zip(self.subscribed, types, forwards))]

    def _gated(self, index: int, forward: Callable[[object], None]) -> Callable:
        def gate(msg) -> None:
            stamp = stamp_ns(msg.header)
            if msg.header.stamp.sec < 0:
                self._on_rejected(f"{self.names[index]}: header stamp {stamp / 1e9:.9f} s is "
                                  f"before 1970; expected a stamp >= 0")
                return
            newest = self._newest[index]
            if newest is not None and stamp < newest - RESTART_JUMP_NS:
                self._restart(index, newest, stamp)
                newest = None
            self._newest[index] = stamp if newest is None else max(newest, stamp)
            # The tracker sees a message before the set that contains it is emitted.
            self.tracker.received(index, stamp)
            forward(msg)
        return gate

    def _internal(self, index: int) -> Callable[[object], None]:
        def add(msg) -> None:
            self._synchronizer.add(index, stamp_ns(msg.header), msg)
        return add

    def _restart(self, index: int, newest: int, stamp: int) -> None:
        self._newest = [None] * len(self._newest)
        self.tracker.clear()
        if self.backend == "message_filters":
            with self._synchronizer.lock:
                for queue in self._synchronizer.queues:
                    queue.clear()  # in place: message_filters' callbacks hold these dicts
        else:
            self._synchronizer.clear()
        self._on_restart(f"{self.names[index]}: stamps went back by "
                         f"{(newest - stamp) / 1e9:.3f} s (a bag played in a loop, or a restarted "
                         f"camera); messages waiting for partners were dropped and "
                         f"synchronisation starts again")

    def _emit(self, *messages) -> None:
        self.tracker.matched([stamp_ns(message.header) for message in messages])
        self._on_set(*messages)

    def set_tolerance(self, seconds: float) -> None:
        """Change the approximate-sync tolerance of the running synchroniser."""
        if not self.approximate:
            return
        self.tolerance_s = seconds
        if self.backend == "message_filters":
            # ApproximateTimeSynchronizer compares stamp differences with a Duration.
            self._synchronizer.slop = Duration(seconds=seconds)
        else:
            self._synchronizer.tolerance_s = seconds
