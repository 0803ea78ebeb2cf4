"""The node's four synchronised input subscriptions: through message_filters where it imports (every
ROS installation), else through this package's own synchroniser (a pip-only install)."""
from __future__ import annotations

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


class StereoInputs:
    """Subscribes to the input topics and calls `on_set(left, right, left_info, right_info)`.

    Every message is also shown to a PartnerTracker before it is synchronised, so messages that
    never make a set reach `on_unmatched` whichever synchroniser runs.
    """

    def __init__(self, node: Node, topics: InputTopics, approximate: bool, tolerance_s: float,
                 queue_size: int, overrides: QoSOverridingOptions, on_set: Callable[..., None],
                 on_unmatched: Callable[[Unmatched], None]) -> None:
        self.approximate = approximate
        self.tolerance_s = tolerance_s if approximate else None
        self.tracker = PartnerTracker(len(topics.names), queue_size, on_unmatched)
        self._on_set = on_set
        self.subscribed = subscribed_topics(node, topics)
        types = list(topics.types.values())
        if message_filters is not None:
            self.backend = "message_filters"
            self._filters = [
                message_filters.Subscriber(node, msg_type, topic,
                                           qos_profile=qos_profile_sensor_data,
                                           qos_overriding_options=overrides)
                for topic, msg_type in zip(self.subscribed, types)]
            # Registered before the synchroniser's own callback, so that the tracker has seen a
            # message before the set that contains it is emitted.
            for index, subscriber in enumerate(self._filters):
                subscriber.registerCallback(self._tracking(index))
            self._synchronizer = (
                message_filters.ApproximateTimeSynchronizer(self._filters, queue_size, tolerance_s)
                if approximate else message_filters.TimeSynchronizer(self._filters, queue_size))
            self._synchronizer.registerCallback(self._emit)
        else:
            self.backend = "internal"
            self._synchronizer = TimeSynchronizer(len(types), queue_size, self.tolerance_s,
                                                  self._emit)
            self._subscribers = [
                node.create_subscription(msg_type, topic, self._internal(index),
                                         qos_profile_sensor_data, qos_overriding_options=overrides)
                for index, (topic, msg_type) in enumerate(zip(self.subscribed, types))]

    def _tracking(self, index: int) -> Callable:
        def track(msg) -> None:
            self.tracker.received(index, stamp_ns(msg.header))
        return track

    def _internal(self, index: int) -> Callable:
        def callback(msg) -> None:
            stamp = stamp_ns(msg.header)
            self.tracker.received(index, stamp)
            self._synchronizer.add(index, stamp, msg)
        return callback

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
