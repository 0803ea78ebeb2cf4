"""What a search range covers in metres, and when the line that says so is a warning."""
from __future__ import annotations

import pytest

from stereo_depth_node.search_range import SearchRange

FB = 60.0  # f B of f = 500 px and B = 0.12 m


def test_an_ordinary_camera_sees_from_the_nearest_depth_on_and_is_told_so_as_information():
    search = SearchRange(FB, 0.0, 63.0, 64, 1.0)
    assert search.nearest == pytest.approx(FB / 63) and search.farthest is None
    text, warn = search.note(0.0, 100.0)
    assert not warn
    assert text.startswith(f"search range: depths from {FB / 63:.3g} m on (max_disparity 64 at "
                           f"input_scale 1); a surface nearer than that")


def test_a_right_principal_point_right_of_the_left_one_ends_the_range_far_away():
    # cx_l - cx_r = -20: shifts 0..63 are disparities 20..83 px, depths 0.723 to 3 m.
    search = SearchRange(FB, -20.0, 63.0, 64, 1.0)
    assert search.nearest == pytest.approx(FB / 83) and search.farthest == pytest.approx(3.0)
    text, warn = search.note(0.0, 100.0)
    assert not warn  # a property of the camera, like the near limit
    assert f"depths from {FB / 83:.3g} m to 3 m" in text
    assert text.endswith(". A surface farther than 3 m is matched inside the range too and "
                         "reported nearer (by sgbm partly invalid): the right principal point "
                         "lies 20 px right of the left one (P[2]), so its pixel shift would be "
                         "below 0, where no matcher searches")
    # Beyond max_depth the far limit costs nothing and goes unmentioned.
    text, _ = SearchRange(FB, -0.5, 63.0, 64, 1.0).note(0.0, 100.0)
    assert f"depths from {FB / 63.5:.3g} m on" in text and "farther than" not in text


def test_ranges_that_give_no_depth_at_all_are_warnings():
    # A baseline typed in millimetres: 952 m and more, beyond max_depth.
    text, warn = SearchRange(FB * 1000, 0.0, 63.0, 64, 1.0).note(0.0, 100.0)
    assert warn and text.endswith(
        ". Every depth the range can give lies beyond max_depth (100 m), so depth and points2 "
        "hold NaN only: is the right camera_info's P[3] (-fx * baseline) in metres?")
    # Everything the range gives is nearer than min_depth (3 m against 5 m).
    text, warn = SearchRange(FB, -20.0, 63.0, 64, 1.0).note(5.0, 100.0)
    assert warn and text.endswith(". Every depth the range can give lies below min_depth (5 m), "
                                  "so depth and points2 hold NaN only")
    # Verged cameras: the left principal point 70 px right of the right one, more than the 63
    # px searched (31.5 input pixels at input_scale 2), so no disparity found is above 0.
    search = SearchRange(FB, 70.0, 31.5, 64, 2.0)
    assert search.nearest is None
    text, warn = search.note(0.0, 100.0)
    assert warn and text == (
        "search range gives no depth: pixel shifts up to 31.5 px are searched (max_disparity 64 "
        "at input_scale 2), but the left principal point lies 70 px right of the right one "
        "(cx_l - cx_r), so no disparity found is above 0 and depth and points2 hold NaN only: "
        "raise max_disparity (README, \"Choosing max_disparity\")")
