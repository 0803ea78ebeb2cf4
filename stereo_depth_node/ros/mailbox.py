"""A one-slot mailbox between the ROS callbacks and the inference worker."""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Holds the newest item only: a put replaces an item not yet taken and counts it as dropped.

    This keeps latency at one frame when the network is slower than the camera: the worker always
    takes the newest stereo set, and no backlog can build up.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._condition = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._condition.notify()

    def take(self, timeout: float) -> T | None:
        """The newest item, or None after `timeout` seconds or once closed."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
