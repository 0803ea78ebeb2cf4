"""Time synchronisation of N message streams, and an account of the messages that found no set.

`TimeSynchronizer` follows the policy of message_filters' TimeSynchronizer and
ApproximateTimeSynchronizer (a set is emitted when every stream has a message at the same stamp,
or stamps less than `tolerance` seconds apart); it runs when message_filters is not installed (it
is not on PyPI).
`PartnerTracker` watches the stamps going into and coming out of either synchroniser, because
message_filters drops messages without partners silently and a robot's user needs to know.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Unmatched:
    """A message that will never be in a set, and how far the nearest message of each other stream
    was, of those waiting and those given up lately."""

    stream: int
    stamp_ns: int
    nearest_gap_ns: dict[int, int]


class TimeSynchronizer:
    """Calls `callback(*messages)` with one message per stream whose stamps agree.

    `tolerance_s` None means exact stamps. Each stream keeps at most `queue_size` messages; when a
    set is emitted, the messages older than it are discarded, as message_filters does.
    """

    def __init__(self, streams: int, queue_size: int, tolerance_s: float | None,
                 callback: Callable[..., None]) -> None:
        self._queues: list[deque[tuple[int, Any]]] = [deque() for _ in range(streams)]
        self.queue_size = queue_size
        self.tolerance_s = tolerance_s
        self._callback = callback
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues:
                queue.clear()

    def add(self, stream: int, stamp_ns: int, message: Any) -> None:
        with self._lock:
            queue = self._queues[stream]
            queue.append((stamp_ns, message))
            while len(queue) > self.queue_size:
                queue.popleft()
            matched = self._match(stamp_ns)
        if matched is not None:
            self._callback(*matched)

    def _match(self, stamp_ns: int) -> list[Any] | None:
        chosen = []
        for queue in self._queues:
            if not queue:
                return None
            chosen.append(min(queue, key=lambda entry: abs(entry[0] - stamp_ns)))
        stamps = [entry[0] for entry in chosen]
        spread_ns = max(stamps) - min(stamps)
        # As message_filters: equal stamps, or a spread strictly less than the tolerance.
        agree = (spread_ns == 0 if self.tolerance_s is None
                 else spread_ns < round(self.tolerance_s * 1e9))
        if not agree:
            return None
        for queue, entry in zip(self._queues, chosen):
            # Everything up to the chosen message is consumed: older ones can never match now.
            while queue and queue.popleft()[1] is not entry[1]:
                pass
        return [entry[1] for entry in chosen]


class PartnerTracker:
    """Reports each received message that can no longer be in a set.

    Fed with every message's stamp before the synchroniser sees it (`received`) and with the stamps
    of every emitted set (`matched`). A message is given up when a set newer than it is emitted on
    its stream, or when more than `queue_size` messages of its stream wait: both synchronisers have
    then discarded it. Works the same behind message_filters and behind `TimeSynchronizer`.
    """

    def __init__(self, streams: int, queue_size: int,
                 on_unmatched: Callable[[Unmatched], None]) -> None:
        self._waiting: list[deque[int]] = [deque() for _ in range(streams)]
        # Partners given up a moment earlier still tell the gap: streams overflow one at a time,
        # so without them the last of a set's messages to go would be measured to the set before.
        self._given_up: list[deque[int]] = [deque(maxlen=queue_size) for _ in range(streams)]
        self.received_per_stream = [0] * streams
        self.queue_size = queue_size
        self._on_unmatched = on_unmatched
        self._lock = threading.Lock()

    def received(self, stream: int, stamp_ns: int) -> None:
        with self._lock:
            self.received_per_stream[stream] += 1
            waiting = self._waiting[stream]
            waiting.append(stamp_ns)
            given_up = []
            while len(waiting) > self.queue_size:
                given_up.append(self._unmatched(stream, waiting.popleft()))
            self._remember(given_up)
        self._report(given_up)

    def matched(self, stamps_ns: list[int]) -> None:
        with self._lock:
            given_up = [self._unmatched(stream, stamp)
                        for stream, (waiting, set_stamp) in enumerate(zip(self._waiting, stamps_ns))
                        for stamp in waiting if stamp < set_stamp]
            for waiting, set_stamp in zip(self._waiting, stamps_ns):
                kept = [stamp for stamp in waiting if stamp > set_stamp]
                waiting.clear()
                waiting.extend(kept)
            self._remember(given_up)
        self._report(given_up)

    def clear(self) -> None:
        """Forget the waiting messages (the synchroniser dropped them) without reporting them."""
        with self._lock:
            for waiting in (*self._waiting, *self._given_up):
                waiting.clear()

    def _unmatched(self, stream: int, stamp_ns: int) -> Unmatched:
        gaps = {index: min(abs(s - stamp_ns) for s in (*waiting, *given_up))
                for index, (waiting, given_up) in enumerate(zip(self._waiting, self._given_up))
                if index != stream and (waiting or given_up)}
        return Unmatched(stream, stamp_ns, gaps)

    def _remember(self, given_up: list[Unmatched]) -> None:
        # After all of them are measured: giving up one stream's messages must not push out the
        # stamps another stream's messages, given up at the same moment, are measured against.
        for unmatched in given_up:
            self._given_up[unmatched.stream].append(unmatched.stamp_ns)

    def _report(self, given_up: list[Unmatched]) -> None:
        for unmatched in given_up:
            self._on_unmatched(unmatched)
