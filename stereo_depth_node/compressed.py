"""JPEG and PNG camera images as image_transport's `compressed` transport writes them, decoded.

image_transport's compressed publisher writes `format` as '<encoding>; <jpeg|png> compressed
[<target>]', e.g. 'bgr8; jpeg compressed bgr8' or 'mono16; png compressed'; older publishers wrote
just 'jpeg' or 'png'. The target names the channel order inside the file (colour images are
written as bgr8/bgr16); without one the file holds the image as it was, so a 'bayer_rggb8; png
compressed' file holds the mosaic. sensor_msgs/CompressedImage says that a format not in this
pattern (cv_bridge's Python `cv2_to_compressed_imgmsg` writes 'jpg'; some drivers leave it empty)
means a bgr8 or mono8 image; the data's own signature then says JPEG or PNG. The `compressedDepth`
transport carries depth maps, not camera images.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError
from .images import BAYER_TO_RGB

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CODECS = ("jpeg", "png")


@dataclass(frozen=True)
class CompressedFormat:
    encoding: str  # of the image before compression; '' where the format does not say
    codec: str     # jpeg or png; '' where the format names none: told by the data's signature
    target: str    # channel order inside the file; '' where the publisher gave none


def parse_format(format_: str, topic: str) -> CompressedFormat:
    """What a CompressedImage format says; InputError for depth maps and codecs other than
    jpeg and png named in image_transport's pattern."""
    text = format_.strip()
    if "compresseddepth" in text.lower():
        raise InputError(f"{topic}: format {format_!r} is compressedDepth data (a depth map), not "
                         f"a camera image; subscribe to the camera's image stream")
    encoding = text.split(";")[0].strip() if ";" in text else ""
    words = text.split(";")[-1].split()
    named = len(words) > 1 and words[1].lower() == "compressed"
    codec = words[0].lower() if words else ""
    if named and codec not in CODECS:
        raise InputError(f"{topic}: format {format_!r} is not supported; expected jpeg or png "
                         f"as image_transport's compressed transport writes them, e.g. "
                         f"'bgr8; jpeg compressed bgr8' or 'mono16; png compressed'")
    if not named and (len(words) != 1 or codec not in CODECS):
        return CompressedFormat(encoding, "", "")  # not the pattern: bgr8 or mono8
    return CompressedFormat(encoding, codec, words[2].lower() if len(words) > 2 else "")


def _codec_of(data: bytes, format_: str, topic: str) -> str:
    if data.startswith(JPEG_START):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    raise InputError(f"{topic}: format {format_!r} names no codec in image_transport's pattern "
                     f"(e.g. 'bgr8; jpeg compressed bgr8'), and the data starts with neither a "
                     f"JPEG marker (FF D8) nor the PNG signature")


def _check_complete(codec: str, data: bytes, topic: str) -> None:
    """Truncated files often still decode (libjpeg fills the rest grey): refuse them here."""
    if codec == "jpeg":
        if not data.startswith(JPEG_START):
            raise InputError(f"{topic}: data does not start with a JPEG marker (FF D8); the "
                             f"format says jpeg")
        # Some encoders pad after the end marker; it must be among the last bytes.
        if JPEG_END not in data[-16:]:
            raise InputError(f"{topic}: JPEG data ({len(data)} bytes) has no end marker "
                             f"(FF D9): truncated")
    else:
        if not data.startswith(PNG_SIGNATURE):
            raise InputError(f"{topic}: data does not start with the PNG signature; the format "
                             f"says png")
        if b"IEND" not in data[-12:]:
            raise InputError(f"{topic}: PNG data ({len(data)} bytes) has no IEND chunk: "
                             f"truncated")


def decode_compressed(format_: str, data: bytes, topic: str) -> np.ndarray:
    """H x W (mono, uint8 or uint16) or H x W x 3 RGB array of a compressed camera image; a
    colour filter mosaic comes back demosaiced, as a raw bayer Image does.

    Raises InputError naming the topic and what is wrong with the message.
    """
    format_info = parse_format(format_, topic)
    data = bytes(data)
    if not data:
        raise InputError(f"{topic}: data is empty")
    codec = format_info.codec or _codec_of(data, format_, topic)
    _check_complete(codec, data, topic)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{topic}: {codec.upper()} data ({len(data)} bytes) could not be "
                         f"decoded: corrupt")
    if image.ndim == 2:
        encoding = format_info.encoding.lower()
        cell = encoding[len("bayer_"):len("bayer_") + 4]
        # No target: the file holds the camera's mosaic itself (a target means it was converted)
        if encoding.startswith("bayer_") and cell in BAYER_TO_RGB and not format_info.target:
            return cv2.cvtColor(image, BAYER_TO_RGB[cell])
        return image
    colour = image[:, :, :3]
    if format_info.target.startswith("rgb"):  # written in RGB order: the file holds what was given
        return np.ascontiguousarray(colour)
    return np.ascontiguousarray(colour[:, :, ::-1])


def encode_compressed(image: np.ndarray, codec: str, encoding: str, quality: int = 95
                      ) -> tuple[str, bytes]:
    """(format, data) the way image_transport's compressed publisher writes an RGB or mono image
    given in `encoding` (rgb8, mono8, mono16): colour goes into the file as bgr8."""
    if codec not in CODECS:
        raise InputError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    colour = image.ndim == 3
    pixels = image[:, :, ::-1] if colour else image
    params = ([cv2.IMWRITE_JPEG_QUALITY, quality] if codec == "jpeg" else
              [cv2.IMWRITE_PNG_COMPRESSION, 3])
    ok, buffer = cv2.imencode(".jpg" if codec == "jpeg" else ".png",
                              np.ascontiguousarray(pixels), params)
    if not ok:
        raise InputError(f"OpenCV could not encode a {image.dtype} {image.shape} image as {codec}")
    target = "bgr8" if colour else ""  # mono images are written as they are, with no target
    return f"{encoding}; {codec} compressed {target}".rstrip(), buffer.tobytes()
