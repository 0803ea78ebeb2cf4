"""sensor_msgs/Image <-> numpy, checked field by field (cv_bridge's job, with clearer errors).

cv_bridge decodes when it imports; it is not on PyPI, so the internal decoder is what runs without
a ROS installation, and it takes over whenever cv_bridge fails (cv_bridge 3.4.0 calls
`ndarray.newbyteorder()`, gone in NumPy 2, on big-endian data). Both return the same arrays.
"""
from __future__ import annotations

import array
import sys
from typing import Callable

import cv2
import numpy as np

from ..compressed import decode_compressed
from ..errors import InputError
from ..images import BAYER_TO_RGB

# encoding -> (dtype, channels, order of the channels in memory)
ENCODINGS: dict[str, tuple[np.dtype, int, str]] = {
    "mono8": (np.dtype(np.uint8), 1, "L"),
    "mono16": (np.dtype(np.uint16), 1, "L"),
    "rgb8": (np.dtype(np.uint8), 3, "RGB"),
    "bgr8": (np.dtype(np.uint8), 3, "BGR"),
    "rgba8": (np.dtype(np.uint8), 4, "RGBA"),
    "bgra8": (np.dtype(np.uint8), 4, "BGRA"),
    # OpenCV-style names some drivers publish: no colour semantics, read as OpenCV does.
    "8UC1": (np.dtype(np.uint8), 1, "L"),
    "8UC3": (np.dtype(np.uint8), 3, "BGR"),
    "16UC1": (np.dtype(np.uint16), 1, "L"),
    # Raw camera output, for rectify:=true on a driver's image_raw: colour filter mosaics (named by
    # their top-left 2x2 cell) and 4:2:2 YUV (yuv422 is UYVY; both 2 bytes a pixel).
    **{f"bayer_{cell}{bits}": (np.dtype(np.uint8 if bits == 8 else np.uint16), 1,
                               f"BAYER_{cell.upper()}")
       for cell in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)},
    "yuv422": (np.dtype(np.uint8), 2, "UYVY"),
    "yuv422_yuy2": (np.dtype(np.uint8), 2, "YUY2"),
}
_TO_RGB = {**{f"BAYER_{cell.upper()}": code for cell, code in BAYER_TO_RGB.items()},
           "UYVY": cv2.COLOR_YUV2RGB_UYVY, "YUY2": cv2.COLOR_YUV2RGB_YUY2}
_BY_LOWER_CASE = {name.lower(): layout for name, layout in ENCODINGS.items()}


def _checked_layout(msg, topic: str) -> tuple[np.dtype, int, str]:
    """dtype, channels and channel order of a usable message; InputError naming the bad field."""
    layout = _BY_LOWER_CASE.get(msg.encoding.lower())
    if layout is None:
        raise InputError(f"{topic}: encoding {msg.encoding!r} is not supported; expected one of "
                         f"{', '.join(ENCODINGS)}")
    dtype, channels, order = layout
    if msg.width == 0 or msg.height == 0:
        raise InputError(f"{topic}: image is {msg.width}x{msg.height} px; expected a non-empty "
                         f"image")
    if channels == 2 and msg.width % 2:
        raise InputError(f"{topic}: {msg.encoding} image is {msg.width} px wide; 4:2:2 YUV "
                         f"needs an even width")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise InputError(f"{topic}: step {msg.step} is less than width x bytes per pixel = "
                         f"{msg.width} x {channels * dtype.itemsize} = {row_bytes}")
    if len(msg.data) < msg.step * msg.height:
        raise InputError(f"{topic}: data has {len(msg.data)} bytes; expected step x height = "
                         f"{msg.step} x {msg.height} = {msg.step * msg.height}")
    return dtype, channels, order


def _decode_internal(msg, dtype: np.dtype, channels: int) -> np.ndarray:
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    row_bytes = msg.width * channels * dtype.itemsize
    # Rows may be padded (step > width * bytes per pixel): keep the first row_bytes of each.
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    byte_order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(byte_order))
    pixels = pixels.reshape(msg.height, msg.width, channels)
    return pixels.astype(dtype, copy=False)


def _in_rgb_order(pixels: np.ndarray, order: str) -> np.ndarray:
    if order == "L":
        return pixels[:, :, 0]
    if order in _TO_RGB:
        return cv2.cvtColor(pixels if pixels.shape[2] == 2 else pixels[:, :, 0], _TO_RGB[order])
    if order.startswith("BGR"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_rgb(msg, topic: str) -> np.ndarray:
    """An Image message as H x W (mono) or H x W x 3 RGB array in native byte order, decoded by
    this package alone. Raises InputError naming the topic, the field and the expected value."""
    dtype, channels, order = _checked_layout(msg, topic)
    return _in_rgb_order(_decode_internal(msg, dtype, channels), order)


def _load_cv_bridge() -> tuple[object | None, str]:
    """A CvBridge, or None and why not (absent, or broken at import)."""
    try:
        from cv_bridge import CvBridge
        return CvBridge(), ""
    except ImportError:
        return None, "cv_bridge is not installed"
    except Exception as exc:  # a cv_bridge built against other libraries fails in odd ways
        return None, f"cv_bridge failed to load: {type(exc).__name__}: {exc}"


class ImageDecoder:
    """Image messages to arrays through cv_bridge where it works, else the internal decoder.

    `on_bridge_failure(text)` is called the first time cv_bridge fails on a message; that message
    and every later one cv_bridge cannot convert are decoded internally, so no frame is lost.
    """

    def __init__(self, on_bridge_failure: Callable[[str], None] | None = None) -> None:
        self._bridge, self.unavailable_reason = _load_cv_bridge()
        self._on_bridge_failure = on_bridge_failure
        self.bridge_failures = 0

    @property
    def name(self) -> str:
        return "cv_bridge" if self._bridge is not None else "internal"

    def to_rgb(self, msg, topic: str) -> np.ndarray:
        """As `image_to_rgb`, through cv_bridge when it can; CompressedImage messages (JPEG, PNG)
        are decoded with OpenCV."""
        if hasattr(msg, "format"):
            return decode_compressed(msg.format, msg.data, topic)
        dtype, channels, order = _checked_layout(msg, topic)
        pixels = None
        # cv_bridge reads rows at a pitch of whole pixels: a step padded to no whole number of
        # pixels (rgb8 rows aligned to 4 bytes) would shift every row without an error.
        if self._bridge is not None and msg.step % (channels * dtype.itemsize) == 0:
            try:
                pixels = self._bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
                pixels = np.asarray(pixels, dtype=dtype).reshape(msg.height, msg.width, channels)
            except Exception as exc:  # cv_bridge's failure must not cost the frame
                pixels = None
                self.bridge_failures += 1
                if self.bridge_failures == 1 and self._on_bridge_failure is not None:
                    self._on_bridge_failure(
                        f"cv_bridge could not convert {topic} ({msg.encoding}, "
                        f"is_bigendian={msg.is_bigendian}): {type(exc).__name__}: {exc}; the "
                        f"internal decoder converts such images instead (logged once)")
        if pixels is None:
            pixels = _decode_internal(msg, dtype, channels)
        return _in_rgb_order(pixels, order)


def float_image_to_array(msg) -> np.ndarray:
    """A 32FC1 Image (rclpy or rosbags message) as a float32 H x W array."""
    if msg.encoding != "32FC1":
        raise InputError(f"expected a 32FC1 image, got encoding {msg.encoding!r}")
    dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
    rows = np.frombuffer(msg.data, np.uint8, count=msg.step * msg.height).reshape(msg.height,
                                                                                msg.step)
    pixels = np.ascontiguousarray(rows[:, :msg.width * 4]).view(dtype)
    return pixels.reshape(msg.height, msg.width).astype(np.float32)


def point_cloud_to_array(msg) -> np.ndarray:
    """An organized PointCloud2 of this node (16-byte little-endian points) as H x W x 4 float32:
    x, y, z and the packed rgb (or padding)."""
    return np.frombuffer(msg.data, "<f4").reshape(msg.height, msg.width, 4)


def message_data(values: np.ndarray) -> array.array:
    """The bytes of `values` (C order) as a uint8[] field keeps them: the generated setter stores
    an array.array('B') as it is but copies bytes into a new one, so this makes one copy of an
    image where tobytes() made two."""
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
    return data


def float_image_fields(values: np.ndarray) -> dict:
    """Fields of a 32FC1 Image (little- or big-endian as this machine) holding `values`."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    height, width = data.shape
    return {"height": height, "width": width, "encoding": "32FC1",
            "is_bigendian": int(sys.byteorder == "big"), "step": width * 4,
            "data": message_data(data)}


def array_to_image_fields(values: np.ndarray, encoding: str) -> dict:
    """Fields of an Image message holding a uint8/uint16 array in `encoding` (for publishers)."""
    dtype, channels, _ = ENCODINGS[encoding]
    data = np.ascontiguousarray(values, dtype=dtype)
    height, width = data.shape[:2]
    return {"height": height, "width": width, "encoding": encoding,
            "is_bigendian": int(sys.byteorder == "big"), "step": width * channels * dtype.itemsize,
            "data": message_data(data)}
