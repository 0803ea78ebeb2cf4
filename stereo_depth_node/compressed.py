"""JPEG and PNG camera images as image_transport's `compressed` transport writes them, decoded.

image_transport's compressed publisher writes `format` as '<encoding>; <jpeg|png> compressed
[<target>]', e.g. 'bgr8; jpeg compressed bgr8' or 'mono16; png compressed'; older publishers wrote
just 'jpeg' or 'png'. The target names the channel order inside the file (colour images are
written as bgr8/bgr16). The `compressedDepth` transport carries depth maps, not camera images.
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CODECS = ("jpeg", "png")


def parse_format(format_: str, topic: str) -> tuple[str, str]:
    """(codec, target) of a CompressedImage format; target '' where the publisher gave none."""
    text = format_.strip()
    if "compresseddepth" in text.lower():
        raise InputError(f"{topic}: format {format_!r} is compressedDepth data (a depth map), not "
                         f"a camera image; subscribe to the camera's image stream")
    words = text.split(";")[-1].split()
    codec = words[0].lower() if words else ""
    if codec not in CODECS or (len(words) > 1 and words[1].lower() != "compressed"):
        raise InputError(f"{topic}: format {format_!r} is not supported; expected jpeg or png "
                         f"as image_transport's compressed transport writes them, e.g. "
                         f"'bgr8; jpeg compressed bgr8' or 'mono16; png compressed'")
    target = words[2].lower() if len(words) > 2 else ""
    return codec, target


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
    """H x W (mono, uint8 or uint16) or H x W x 3 RGB array of a compressed camera image.

    Raises InputError naming the topic and what is wrong with the message.
    """
    codec, target = parse_format(format_, topic)
    data = bytes(data)
    if not data:
        raise InputError(f"{topic}: data is empty")
    _check_complete(codec, data, topic)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{topic}: {codec.upper()} data ({len(data)} bytes) could not be "
                         f"decoded: corrupt")
    if image.ndim == 2:
        return image
    colour = image[:, :, :3]
    if target.startswith("rgb"):  # written in RGB order: the file holds what was given
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
