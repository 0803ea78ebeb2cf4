"""Compressed camera images as image_transport writes them: decoded in the right colour order, and
every malformed message refused with its topic and reason."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stereo_depth_node.compressed import (CompressedFormat, decode_compressed, encode_compressed,
                                          parse_format)
from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.errors import InputError

from scenes import bayer_mosaic


@pytest.fixture(scope="module")
def rgb():
    return render_plane_pair(48, 64, 4.0, seed=3)[0]


@pytest.mark.parametrize("format_, expected", [
    ("bgr8; jpeg compressed bgr8", ("bgr8", "jpeg", "bgr8")),
    ("rgb8; jpeg compressed bgr8", ("rgb8", "jpeg", "bgr8")),
    ("mono16; png compressed ", ("mono16", "png", "")),
    ("bayer_rggb8; jpeg compressed mono8", ("bayer_rggb8", "jpeg", "mono8")),
    ("jpeg", ("", "jpeg", "")),
    ("PNG", ("", "png", "")),
    # Outside the pattern (cv_bridge's Python writes 'jpg'): the data's signature decides.
    ("jpg", ("", "", "")),
    ("", ("", "", "")),
    ("bgr8", ("", "", "")),
])
def test_formats_as_image_transport_writes_them(format_, expected):
    assert parse_format(format_, "cam") == CompressedFormat(*expected)


def test_png_round_trips_exactly_in_rgb_order(rgb):
    format_, data = encode_compressed(rgb, "png", "rgb8")
    assert format_ == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed(format_, data, "cam"), rgb)


def test_jpeg_quality_95_stays_close_and_keeps_the_colour_order(rgb):
    format_, data = encode_compressed(rgb, "jpeg", "rgb8", quality=95)
    decoded = decode_compressed(format_, data, "cam")
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(decoded @ luma - rgb @ luma).mean() < 1.5  # JPEG keeps brightness closely
    # Colour is subsampled, but red and blue swapped would be several times further off.
    error = np.abs(decoded.astype(int) - rgb).mean()
    assert error < 8 and np.abs(decoded[:, :, ::-1].astype(int) - rgb).mean() > 3 * error


def test_rgb_target_means_the_file_holds_rgb(rgb):
    ok, data = cv2.imencode(".png", rgb)  # written without swapping: the file's order is RGB
    np.testing.assert_array_equal(
        decode_compressed("rgb8; png compressed rgb8", data.tobytes(), "cam"), rgb)


def test_mono16_png_keeps_sixteen_bits():
    mono = (np.arange(48 * 64, dtype=np.uint16) * 21).reshape(48, 64)
    format_, data = encode_compressed(mono, "png", "mono16")
    assert format_ == "mono16; png compressed"
    decoded = decode_compressed(format_, data, "cam")
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, mono)


@pytest.mark.parametrize("format_", ["", "jpg", "bgr8"])
def test_a_format_outside_the_pattern_means_bgr8_and_the_data_names_the_codec(rgb, format_):
    # sensor_msgs/CompressedImage: such a format means a bgr8 (or mono8) image. PNG data under
    # 'jpg' is decoded as what it is, as image_transport's subscriber (cv::imdecode) does.
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    np.testing.assert_array_equal(decode_compressed(format_, png.tobytes(), "cam"), rgb)
    ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded = decode_compressed(format_, jpeg.tobytes(), "cam")
    assert np.abs(decoded.astype(int) - rgb).mean() < 8
    ok, mono = cv2.imencode(".png", rgb[:, :, 1])
    np.testing.assert_array_equal(decode_compressed(format_, mono.tobytes(), "cam"), rgb[:, :, 1])


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("cell", ["rggb", "bggr", "gbrg", "grbg"])
def test_a_png_of_a_bayer_mosaic_gives_the_colour_the_sensor_saw(cell, bits):
    # image_transport writes a mosaic into PNG as it is, with no target ('bayer_rggb8; png
    # compressed '); a uniform colour must come back exactly through every cell and depth.
    colour = np.array([200, 50, 10]) * (257 if bits == 16 else 1)
    dtype = np.uint16 if bits == 16 else np.uint8
    mosaic = bayer_mosaic(np.tile(colour, (6, 8, 1)).astype(dtype), cell)
    ok, png = cv2.imencode(".png", mosaic)
    decoded = decode_compressed(f"bayer_{cell}{bits}; png compressed ", png.tobytes(), "cam")
    assert decoded.shape == (6, 8, 3) and decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, np.broadcast_to(colour, (6, 8, 3)))


def test_a_bayer_image_converted_to_mono8_before_jpeg_stays_grey(rgb):
    # ROS 2's compressed publisher converts non-colour images to mono8 for JPEG and says so.
    grey = rgb[:, :, 1]
    ok, data = cv2.imencode(".png", grey)
    np.testing.assert_array_equal(
        decode_compressed("bayer_rggb8; png compressed mono8", data.tobytes(), "cam"), grey)


def _jpeg(rgb):
    return encode_compressed(rgb, "jpeg", "rgb8")[1]


@pytest.mark.parametrize("format_, make, message", [
    ("bgr8; jpeg compressed bgr8", lambda rgb: _jpeg(rgb)[:len(_jpeg(rgb)) // 2],
     "left/image_rect/compressed: JPEG data ("),
    ("bgr8; jpeg compressed bgr8", lambda rgb: b"\xff\xd8" + bytes(500) + b"\xff\xd9",
     "left/image_rect/compressed: JPEG data (504 bytes) could not be decoded: corrupt"),
    ("bgr8; png compressed bgr8", lambda rgb: encode_compressed(rgb, "png", "rgb8")[1][:-40],
     "has no IEND chunk: truncated"),
    ("bgr8; png compressed bgr8", lambda rgb: _jpeg(rgb), "does not start with the PNG signature"),
    ("bgr8; jpeg compressed bgr8", lambda rgb: b"", "left/image_rect/compressed: data is empty"),
    ("bgr8; webp compressed bgr8", _jpeg, "format 'bgr8; webp compressed bgr8' is not supported"),
    ("16UC1; compressedDepth png", _jpeg, "is compressedDepth data (a depth map), not a camera"),
    ("jpg", lambda rgb: b"GIF89a" + bytes(100),
     "format 'jpg' names no codec in image_transport's pattern (e.g. 'bgr8; jpeg compressed "
     "bgr8'), and the data starts with neither a JPEG marker (FF D8) nor the PNG signature"),
    ("", lambda rgb: _jpeg(rgb)[:len(_jpeg(rgb)) // 2], "has no end marker (FF D9): truncated"),
])
def test_malformed_messages_are_named(rgb, format_, make, message):
    with pytest.raises(InputError) as error:
        decode_compressed(format_, make(rgb), "left/image_rect/compressed")
    assert message in str(error.value)
