"""PFM reading and writing, on real files and corrupt ones."""
from __future__ import annotations

import numpy as np
import pytest

from stereo_depth_node.data.pfm import read_pfm, write_pfm
from stereo_depth_node.errors import InputError


def test_round_trip_keeps_values_and_row_order(tmp_path, rng):
    for shape in [(5, 7), (4, 6, 3)]:
        image = rng.standard_normal(shape).astype(np.float32)
        image[0, 0] = np.inf
        write_pfm(tmp_path / "a.pfm", image)
        np.testing.assert_array_equal(read_pfm(tmp_path / "a.pfm"), image)


def test_big_endian_and_bottom_up_rows(tmp_path):
    rows = np.array([[1, 2], [3, 4]], ">f4")
    # Stored bottom row first, positive scale = big-endian.
    (tmp_path / "b.pfm").write_bytes(b"Pf\n2 2\n1.0\n" + rows[::-1].tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "b.pfm"), [[1, 2], [3, 4]])


@pytest.mark.parametrize("header", [b"Pf\r\n3 2\r\n-1.0\r\n", b"Pf\n3 2\n-1.0 \n",
                                    b"Pf 3 2 -1.0 "])
def test_headers_written_on_windows_or_with_spaces(tmp_path, header):
    # The data started a byte late after a CRLF header and came out as garbage (8.97e-44 ...).
    # The first float stored (bottom row first) begins with byte 0x20, a space: a reader that
    # skipped whitespace after the header would shift the data.
    first = np.frombuffer(b"\x20\x00\x80\x3f", "<f4")[0]
    rows = np.array([[1.5, -2.0, 32.0], [first, 0.25, np.inf]], "<f4")
    (tmp_path / "w.pfm").write_bytes(header + rows[::-1].tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "w.pfm"), rows)


def test_eth3d_ground_truth(stereo_eval):
    disparity = read_pfm(stereo_eval / "eth3d/playground/disp0.pfm")
    assert disparity.shape == (490, 941) and disparity.dtype == np.float32
    valid = np.isfinite(disparity)
    assert 0.4 < valid.mean() < 0.6  # "about half the pixels valid"
    assert 0 < disparity[valid].min() and disparity[valid].max() < 64


@pytest.mark.parametrize("content, message", [
    (b"P5\n2 2\n255\n", "is not a PFM file"),
    (b"Pf\n4 4\n-1.0\n" + b"\0" * 20, "is truncated: 4x4x1 floats need 64 bytes, found 20"),
    (b"Pf\n2 2\n0\n" + b"\0" * 16, "scale must not be 0"),
])
def test_corrupt_pfm_is_refused(tmp_path, content, message):
    (tmp_path / "c.pfm").write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_pfm(tmp_path / "c.pfm")
