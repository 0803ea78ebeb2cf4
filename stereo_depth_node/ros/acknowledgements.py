"""What reliable subscribers have not yet acknowledged, asked before publishers go: destroying a
publisher, or leaving the process, discards what its subscribers have not received."""
from __future__ import annotations

import time
from typing import Mapping

from rclpy.duration import Duration
from rclpy.publisher import Publisher


def unacknowledged(publishers: Mapping[str, Publisher], timeout_s: float) -> list[str]:
    """The topics whose reliable subscribers had not acknowledged everything published within
    `timeout_s`, for all the publishers together (a best-effort publisher has nothing to wait
    for)."""
    deadline = time.monotonic() + timeout_s
    return [topic for topic, publisher in publishers.items()
            if not publisher.wait_for_all_acked(
                Duration(seconds=max(deadline - time.monotonic(), 0.0)))]
