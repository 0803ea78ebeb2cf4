"""Exact and approximate time synchronisation of N message streams.

The same policy as message_filters' TimeSynchronizer and ApproximateTimeSynchronizer (a set is
emitted when every stream has a message at the same stamp, or within `tolerance` seconds), written
here because message_filters is not on PyPI. It also counts the messages that never found partners,
which message_filters does not report.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Unmatched:
    """A message dropped without partners, and how far the nearest message of each stream was."""

    stream: int
    stamp_ns: int
    nearest_gap_ns: dict[int, int]


class TimeSynchronizer:
    """Calls `callback(*messages)` with one message per stream whose stamps agree.

    `tolerance_s` None means exact stamps. Each stream keeps at most `queue_size` messages; a
    message that falls out of its queue, or is older than an emitted set, is reported to
    `on_unmatched`.
    """

    def __init__(self, streams: int, queue_size: int, tolerance_s: float | None,
                 callback: Callable[..., None],
                 on_unmatched: Callable[[Unmatched], None] | None = None) -> None:
        self._queues: list[deque[tuple[int, Any]]] = [deque() for _ in range(streams)]
        self.queue_size = queue_size
        self.tolerance_s = tolerance_s
        self._callback = callback
        self._on_unmatched = on_unmatched
        self._lock = threading.Lock()

    def add(self, stream: int, stamp_ns: int, message: Any) -> None:
        with self._lock:
            queue = self._queues[stream]
            queue.append((stamp_ns, message))
            while len(queue) > self.queue_size:
                self._drop(stream, queue.popleft()[0])
            matched = self._match(stream, stamp_ns)
        if matched is not None:
            self._callback(*matched)

    def _match(self, stream: int, stamp_ns: int) -> list[Any] | None:
        tolerance_ns = 0 if self.tolerance_s is None else round(self.tolerance_s * 1e9)
        chosen = []
        for queue in self._queues:
            if not queue:
                return None
            nearest = min(queue, key=lambda entry: abs(entry[0] - stamp_ns))
            chosen.append(nearest)
        stamps = [entry[0] for entry in chosen]
        if max(stamps) - min(stamps) > tolerance_ns:
            return None
        for index, (queue, entry) in enumerate(zip(self._queues, chosen)):
            # Everything up to the chosen message is consumed: older ones can never match now.
            while queue:
                stamp, message = queue.popleft()
                if message is entry[1]:
                    break
                self._drop(index, stamp)
        return [entry[1] for entry in chosen]

    def _drop(self, stream: int, stamp_ns: int) -> None:
        if self._on_unmatched is None:
            return
        gaps = {}
        for index, queue in enumerate(self._queues):
            if index != stream and queue:
                gaps[index] = min(abs(s - stamp_ns) for s, _ in queue)
        self._on_unmatched(Unmatched(stream, stamp_ns, gaps))
