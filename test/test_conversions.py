"""Image message <-> array conversions, byte by byte (no DDS needed for these)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image

from stereo_depth_node.errors import InputError
from stereo_depth_node.ros.conversions import (ImageDecoder, array_to_image_fields,
                                               float_image_fields, float_image_to_array,
                                               image_to_rgb)
from scenes import bayer_mosaic, yuv422

BROKEN_CV_BRIDGE = Path(__file__).parent / "broken_cv_bridge"


@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[:, :, ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_give_rgb(rng, encoding, make):
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = Image(**array_to_image_fields(make(rgb), encoding))
    np.testing.assert_array_equal(image_to_rgb(msg, "cam"), rgb)


@pytest.mark.parametrize("encoding, like", [("8UC1", "mono8"), ("8UC3", "bgr8"),
                                            ("16UC1", "mono16")])
def test_opencv_style_encodings_read_like_their_ros_twins(rng, encoding, like):
    dtype, shape = ((np.uint16, (5, 7)) if like == "mono16" else
                    (np.uint8, (5, 7, 3) if like == "bgr8" else (5, 7)))
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    msg = Image(**array_to_image_fields(pixels, like))
    expected = image_to_rgb(msg, "cam")
    msg.encoding = encoding  # as a driver writes it
    np.testing.assert_array_equal(image_to_rgb(msg, "cam"), expected)


@pytest.mark.parametrize("cell", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_mosaics_give_the_colour_the_sensor_saw(cell, bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    colour = np.array([200, 50, 10], dtype) * (1 if bits == 8 else 257)
    msg = Image(**array_to_image_fields(bayer_mosaic(np.tile(colour, (6, 8, 1)), cell),
                                        f"bayer_{cell}{bits}"))
    rgb = image_to_rgb(msg, "cam")
    assert rgb.dtype == dtype and rgb.shape == (6, 8, 3)
    np.testing.assert_array_equal(rgb[2:-2, 2:-2], np.tile(colour, (2, 4, 1)))


@pytest.mark.parametrize("encoding, order", [("yuv422", "UYVY"), ("yuv422_yuy2", "YUY2")])
def test_yuv422_gives_bt601_rgb(encoding, order):
    def decoded(luma: int, u: int, v: int) -> np.ndarray:
        pixels = yuv422(np.full((2, 4), luma, np.uint8), u, v, order)
        return image_to_rgb(Image(**array_to_image_fields(pixels, encoding)), "cam")

    # BT.601 video range: R = 1.164 (Y - 16) + 1.596 (V - 128),
    # G = 1.164 (Y - 16) - 0.391 (U - 128) - 0.813 (V - 128), B = 1.164 (Y - 16) + 2.018 (U - 128)
    gray = 1.164 * (100 - 16)
    np.testing.assert_allclose(decoded(100, 128, 128), np.full((2, 4, 3), gray), atol=1)
    red = (1.164 * 65 + 1.596 * 112, 1.164 * 65 + 0.391 * 38 - 0.813 * 112,
           1.164 * 65 - 2.018 * 38)
    np.testing.assert_allclose(decoded(81, 90, 240), np.tile(np.clip(red, 0, 255), (2, 4, 1)),
                               atol=1)


def test_yuv422_needs_an_even_width():
    msg = Image(height=2, width=5, encoding="yuv422", step=10, data=bytes(20))
    with pytest.raises(InputError, match="cam: yuv422 image is 5 px wide; 4:2:2 YUV needs an "
                                         "even width"):
        image_to_rgb(msg, "cam")


def test_mono16_big_endian_with_row_padding(rng):
    mono = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    rows = np.zeros((4, 6 * 2 + 4), np.uint8)
    rows[:, :12] = mono.astype(">u2").view(np.uint8).reshape(4, 12)
    msg = Image(height=4, width=6, encoding="mono16", is_bigendian=1, step=16,
                data=rows.tobytes())
    result = image_to_rgb(msg, "cam")
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, mono)


def test_float_images_round_trip_in_either_byte_order(rng):
    depth = rng.standard_normal((3, 5)).astype(np.float32)
    msg = Image(**float_image_fields(depth))
    np.testing.assert_array_equal(float_image_to_array(msg), depth)
    padded = np.zeros((3, 5 * 4 + 8), np.uint8)
    padded[:, :20] = depth.astype(">f4").view(np.uint8).reshape(3, 20)
    big = Image(height=3, width=5, encoding="32FC1", is_bigendian=1, step=28,
                data=padded.tobytes())
    np.testing.assert_array_equal(float_image_to_array(big), depth)
    with pytest.raises(InputError, match="expected a 32FC1 image, got encoding 'mono8'"):
        float_image_to_array(Image(**array_to_image_fields(np.zeros((2, 2), np.uint8),
                                                           "mono8")))


@pytest.mark.skipif(importlib.util.find_spec("cv_bridge") is not None,
                    reason="cv_bridge is installed here")
def test_without_cv_bridge_the_internal_decoder_runs(rng):
    decoder = ImageDecoder()
    assert (decoder.name, decoder.unavailable_reason) == ("internal", "cv_bridge is not installed")
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    bgr = Image(**array_to_image_fields(rgb[:, :, ::-1], "bgr8"))
    np.testing.assert_array_equal(decoder.to_rgb(bgr, "cam"), rgb)


def test_a_failing_cv_bridge_costs_no_frame_and_is_reported_once(rng, monkeypatch):
    monkeypatch.syspath_prepend(str(BROKEN_CV_BRIDGE))
    reports = []
    decoder = ImageDecoder(on_bridge_failure=reports.append)
    assert decoder.name == "cv_bridge"
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decoder.to_rgb(Image(**array_to_image_fields(rgb, "rgb8")),
                                                 "cam"), rgb)
    assert decoder.bridge_failures == 0  # little-endian data goes through cv_bridge
    mono = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    big = Image(height=4, width=6, encoding="mono16", is_bigendian=1, step=12,
                data=mono.astype(">u2").tobytes())
    for _ in range(3):
        result = decoder.to_rgb(big, "left/image_rect")
        assert result.dtype == np.uint16
        np.testing.assert_array_equal(result, mono)
    assert decoder.bridge_failures == 3
    [report] = reports
    assert report.startswith("cv_bridge could not convert left/image_rect (mono16, "
                             "is_bigendian=1): AttributeError:")
    assert "newbyteorder" in report and "internal decoder converts such images" in report


def test_rows_padded_to_no_whole_pixel_skip_cv_bridge(rng, monkeypatch):
    # cv_bridge reads rows at a pitch of whole pixels: with step 16 for 5 rgb8 pixels (15 bytes,
    # rows aligned to 4 bytes) every row after the first would come back shifted, silently.
    monkeypatch.syspath_prepend(str(BROKEN_CV_BRIDGE))
    decoder = ImageDecoder()
    assert decoder.name == "cv_bridge"
    rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :15] = rgb.reshape(4, 15)
    msg = Image(height=4, width=5, encoding="rgb8", step=16, data=padded.tobytes())
    np.testing.assert_array_equal(decoder.to_rgb(msg, "cam"), rgb)
    assert decoder.bridge_failures == 0  # not a failure of cv_bridge: it is not asked
