"""The processing rate /diagnostics reports, from the times frames finished (hand-made times)."""
from __future__ import annotations

from collections import deque

import pytest

from stereo_depth_node.ros.node import rate_hz


def test_a_steady_stream():
    times = deque((100.0 + 0.1 * i for i in range(20)), maxlen=100)  # as the node keeps them
    assert rate_hz(times, times[-1] + 0.05) == pytest.approx(10.0)


def test_a_network_at_seconds_a_frame_is_not_read_as_stopped_between_frames():
    # 6 s a frame (a CPU at 640x480): 5.5 s after the last frame the node is still working.
    times = [100.0 + 6.0 * i for i in range(10)]
    assert rate_hz(times, times[-1] + 5.5) == pytest.approx(1 / 6)
    assert rate_hz(times, times[-1] + 19.0) == 0.0  # three intervals quiet: stopped


def test_a_pause_in_the_stream_starts_a_new_run():
    # 50 frames at 10 Hz, a 60 s pause (a paused bag), then 10 frames at 10 Hz: 10 Hz, not the
    # 1 Hz that averaging over the pause gives.
    before = [100.0 + 0.1 * i for i in range(50)]
    after = [before[-1] + 60.0 + 0.1 * i for i in range(10)]
    assert rate_hz(before + after, after[-1] + 0.05) == pytest.approx(10.0)
    assert rate_hz(before + after[:1], after[0] + 0.05) == 0.0  # one frame is no rate yet


def test_quiet_for_longer_than_five_seconds_reads_zero():
    times = [100.0 + 0.1 * i for i in range(20)]
    assert rate_hz(times, times[-1] + 5.1) == 0.0
    assert rate_hz(times[:1], 100.0) == 0.0
