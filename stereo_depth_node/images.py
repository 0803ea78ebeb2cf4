"""Checks and conversions of image arrays before they reach a matcher."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .errors import InputError

MIN_SIDE_PX = 32
# Above 1 the pair is enlarged before matching: at 4 the network already sees 16 times the pixels.
MAX_INPUT_SCALE = 4.0
SUPPORTED_DTYPES = (np.uint8, np.uint16)
# Colour filter mosaics by their top-left 2x2 cell (ROS's bayer_<cell>8/16). OpenCV names a mosaic
# by the second row's second and third pixels, so ROS's rggb is its BayerBG.
BAYER_TO_RGB = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
                "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}


def check_sides(image: np.ndarray, name: str) -> None:
    """An InputError naming `name` when a side of `image` is under MIN_SIDE_PX."""
    if min(image.shape[:2]) < MIN_SIDE_PX:
        raise InputError(f"{name} is {image.shape[1]}x{image.shape[0]} px; "
                         f"both sides must be at least {MIN_SIDE_PX} px")


def as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """H x W x 3 view or copy of a uint8/uint16 mono (H x W, H x W x 1) or RGB image."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} image must be a numpy array, got {type(image).__name__}")
    if image.dtype not in SUPPORTED_DTYPES:
        raise InputError(f"{name} image has dtype {image.dtype}; supported: uint8, uint16")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise InputError(f"{name} image has shape {image.shape}; expected H x W (mono), "
                         f"H x W x 1 or H x W x 3 (RGB)")
    check_sides(image, f"{name} image")
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def _is_mono(image: np.ndarray) -> bool:
    return image.ndim == 2 or image.shape[2] == 1


def matching_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) a pair is matched at under `input_scale`; an InputError when a side falls
    below MIN_SIDE_PX, where a network's quarter-resolution features have almost nothing left
    and the answer would be noise scaled back up to the input."""
    size = (round(height * scale), round(width * scale))
    if min(size) < MIN_SIDE_PX:
        raise InputError(f"input_scale {scale:g} makes the {width}x{height} px pair "
                         f"{size[1]}x{size[0]} px for matching; both sides must be at least "
                         f"{MIN_SIDE_PX} px (raise input_scale)")
    return size


def check_pair(left: np.ndarray, right: np.ndarray, bits: "SignificantBits | None" = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Both images as H x W x 3 of one dtype and size, or an InputError naming what differs;
    uint16 ones widened by `bits` (a stream's), else by the pair's own bits. A colour image
    beside a mono one is matched in grey: the networks compare the three channels, and a mono
    view's three equal ones match a colour view's worst (teddy, psmnet_dws: EPE 1.65-1.94 px
    mixed, 1.32 both grey, 1.39 both colour)."""
    left_rgb, right_rgb = as_rgb(left, "left"), as_rgb(right, "right")
    if left_rgb.shape != right_rgb.shape:
        raise InputError(f"left image is {left_rgb.shape[1]}x{left_rgb.shape[0]} px but right "
                         f"image is {right_rgb.shape[1]}x{right_rgb.shape[0]} px; "
                         f"a rectified pair has one size")
    if left_rgb.dtype != right_rgb.dtype:
        raise InputError(f"left image is {left_rgb.dtype} but right image is {right_rgb.dtype}")
    # Widened before any grey conversion: the stream's bits are learnt from the colour channels,
    # as points2's colours learn them, so that the shift does not depend on the outputs enabled.
    left_rgb, right_rgb = (bits or SignificantBits()).widen(left_rgb, right_rgb)
    if _is_mono(left) != _is_mono(right):
        left_rgb, right_rgb = (np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3,
                                         axis=2) for image in (left_rgb, right_rgb))
    return left_rgb, right_rgb


class SignificantBits:
    """The bits a camera's uint16 images use (the mono16 of a 10- or 12-bit camera leaves the top
    ones empty), learnt as the most that any of its frames has used so far, at least 8.

    As they come, such images look nearly black to a matcher: teddy's bad-3 (max disparity 64)
    was 12.1 % for psmnet_dws and 23.1 % for SGBM at 8 bits, 52 and 27 % at 12 bits, 74 and 40 %
    at 10; widened to the full 16 bits, both give their 8-bit numbers. The shift is the
    camera's, not each frame's: a frame whose brightest pixel falls below a power of two would
    otherwise be brightened twice over, and the point cloud's colours would jump with the
    scene."""

    def __init__(self) -> None:
        self.bits = 8

    def widen(self, *images: np.ndarray) -> tuple[np.ndarray, ...]:
        """uint16 images shifted up together (one shift keeps a pair's brightness alike); other
        images as they are."""
        if images[0].dtype != np.uint16:
            return images
        self.bits = max(self.bits, max(int(image.max()) for image in images).bit_length())
        shift = 16 - self.bits
        return images if shift == 0 else tuple(np.left_shift(image, shift) for image in images)


def widen_to_full_range(*images: np.ndarray) -> tuple[np.ndarray, ...]:
    """`SignificantBits.widen` for images on their own (one pair, one file): by their own bits."""
    return SignificantBits().widen(*images)


def unit_scale(dtype: np.dtype) -> float:
    """The value that maps to 1.0 for an integer image dtype."""
    return float(np.iinfo(dtype).max)


def unit_float_to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8 (rounded, clipped)."""
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def display_uint8(image: np.ndarray, bits: SignificantBits | None = None) -> np.ndarray:
    """uint8 colour of an image for point clouds: a 10- or 12-bit camera's shown bright (by the
    stream's `bits` where given, as it was matched)."""
    return to_uint8((bits or SignificantBits()).widen(image)[0])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 version of a uint8/uint16 image, full range kept (OpenCV matchers take 8 bits)."""
    if image.dtype == np.uint8:
        return image
    return cv2.convertScaleAbs(image, alpha=255.0 / unit_scale(image.dtype))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8/uint16 mono (H x W) or RGB (H x W x 3); alpha is dropped."""
    # Checked first: OpenCV would also print a warning of its own for a file it cannot open.
    if not os.path.isfile(path):
        reason = "a folder, not a file" if os.path.isdir(path) else "no such file"
        raise InputError(f"cannot read image {os.fspath(path)!r}: {reason}")
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read image {os.fspath(path)!r} (not an image OpenCV reads)")
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image
