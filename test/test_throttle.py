"""The node's error throttle: one line per kind per period, and a bounded table of kinds."""
from stereo_depth_node.ros.throttle import ErrorThrottle


def test_one_line_per_kind_per_period():
    throttle = ErrorThrottle(5.0)
    assert throttle.allow("left size", 100.0)
    assert not throttle.allow("left size", 104.9)
    assert throttle.allow("right size", 104.9)  # another kind is not held back
    assert throttle.allow("left size", 105.0)
    assert not throttle.allow("left size", 109.0)


def test_ever_new_kinds_do_not_grow_the_table_without_bound():
    throttle = ErrorThrottle(5.0, prune_above=64)
    # Ten new texts a second for an hour: 50 of them are within one period at any time.
    for i in range(36_000):
        assert throttle.allow(f"stamp {i}", i / 10)
        assert len(throttle) <= 65
