"""The package's synchroniser, which runs where message_filters is not installed, against
message_filters itself: fed the same stamps, both must pair the same messages."""
from __future__ import annotations

import importlib

import pytest
from sensor_msgs.msg import CameraInfo

from ros_harness import ROS_PYTHON
from stereo_depth_node.ros.sync import PartnerTracker, TimeSynchronizer

TOLERANCE_S = 0.01


@pytest.fixture
def message_filters(monkeypatch):
    if not (ROS_PYTHON / "message_filters" / "__init__.py").is_file():
        pytest.fail(f"message_filters missing under {ROS_PYTHON}")
    monkeypatch.syspath_prepend(str(ROS_PYTHON))
    return importlib.import_module("message_filters")


def _message(stamp_ns: int) -> CameraInfo:
    message = CameraInfo()
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return message


def _stamp(message: CameraInfo) -> int:
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec


def _sets_of_both(message_filters, tolerance_s: float | None, arrivals: list[tuple[int, int]]
                  ) -> tuple[list[list[int]], list[list[int]]]:
    """The stamps of the sets each synchroniser emits for (stream, stamp_ns) arrivals."""
    ours: list[list[int]] = []
    own = TimeSynchronizer(2, 5, tolerance_s, lambda *m: ours.append([_stamp(x) for x in m]))
    theirs: list[list[int]] = []
    inputs = [message_filters.SimpleFilter() for _ in range(2)]
    if tolerance_s is None:
        reference = message_filters.TimeSynchronizer(inputs, 5)
    else:
        reference = message_filters.ApproximateTimeSynchronizer(inputs, 5, tolerance_s)
    reference.registerCallback(lambda *m: theirs.append([_stamp(x) for x in m]))
    for stream, stamp_ns in arrivals:
        message = _message(stamp_ns)
        own.add(stream, stamp_ns, message)
        inputs[stream].signalMessage(message)
    return ours, theirs


@pytest.mark.parametrize("tolerance_s, gap_ns, pairs", [
    (TOLERANCE_S, 10_000_000, False),  # exactly the tolerance apart: message_filters pairs < only
    (TOLERANCE_S, 9_999_999, True),
    (TOLERANCE_S, 0, True),
    (None, 1, False),  # exact sync
    (None, 0, True),
])
def test_pairs_what_message_filters_pairs_at_the_tolerances_edge(message_filters, tolerance_s,
                                                                  gap_ns, pairs):
    start = 1_700_000_000 * 10**9
    ours, theirs = _sets_of_both(message_filters, tolerance_s,
                                 [(0, start), (1, start + gap_ns)])
    assert ours == theirs == ([[start, start + gap_ns]] if pairs else [])


def test_a_partner_given_up_a_moment_earlier_still_gives_the_gap():
    # Four streams, exact stamps: the right image (stream 1) is 3 ms late, so its set never
    # forms. The streams overflow one after the other as later sets arrive, so the left
    # image's message at 1 s is given up before the right one's; the right one's nearest left
    # image is still the one 3 ms away, not the next second's.
    reports = []
    tracker = PartnerTracker(4, queue_size=2, on_unmatched=reports.append)
    second = 10**9
    for stream in range(4):
        tracker.received(stream, second + (3_000_000 if stream == 1 else 0))
    for stamp in (2 * second, 3 * second):
        for stream in range(4):
            tracker.received(stream, stamp)
    right = next(report for report in reports if report.stream == 1)
    assert right.stamp_ns == second + 3_000_000
    assert right.nearest_gap_ns == {0: 3_000_000, 2: 3_000_000, 3: 3_000_000}
    assert len(reports) == 4 and not [report for report in reports if report.stream != 1 and
                                      report.nearest_gap_ns[1] != 3_000_000]
