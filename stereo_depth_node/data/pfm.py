"""Portable Float Map I/O (the disparity format of SceneFlow, Middlebury 2014 and ETH3D)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError

_FIELDS = rb"^(PF|Pf)\s+(\d+)\s+(\d+)\s+(-?[0-9.eE+-]+)"
# The header ends with the scale's line: spaces and a CR before its newline are the header's
# (files written on Windows), so the data starts after the newline. Without a newline there, one
# whitespace byte ends it, as the format says.
_HEADERS = (re.compile(_FIELDS + rb"[ \t]*\r?\n", re.ASCII), re.compile(_FIELDS + rb"\s", re.ASCII))


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """float32 H x W (Pf) or H x W x 3 (PF), top row first; inf values are kept as they are."""
    raw = Path(path).read_bytes()
    match = _HEADERS[0].match(raw) or _HEADERS[1].match(raw)
    if match is None:
        raise InputError(f"{os.fspath(path)!r} is not a PFM file (header must be 'PF' or 'Pf', "
                         f"width, height and scale)")
    channels = 3 if match.group(1) == b"PF" else 1
    width, height = int(match.group(2)), int(match.group(3))
    scale = float(match.group(4))
    if scale == 0:
        raise InputError(f"{os.fspath(path)!r}: PFM scale must not be 0")
    count = width * height * channels
    body = raw[match.end():]
    if len(body) < 4 * count:
        raise InputError(f"{os.fspath(path)!r} is truncated: {width}x{height}x{channels} floats "
                         f"need {4 * count} bytes, found {len(body)}")
    dtype = "<f4" if scale < 0 else ">f4"
    data = np.frombuffer(body, dtype=dtype, count=count).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    # PFM stores rows bottom to top.
    return np.ascontiguousarray(data.reshape(shape)[::-1])


def write_pfm(path: str | os.PathLike, image: np.ndarray) -> None:
    """Little-endian PFM of a float H x W or H x W x 3 array."""
    image = np.asarray(image, dtype="<f4")
    if image.ndim == 3 and image.shape[2] == 3:
        kind = b"PF"
    elif image.ndim == 2:
        kind = b"Pf"
    else:
        raise InputError(f"PFM holds H x W or H x W x 3 arrays, got shape {image.shape}")
    height, width = image.shape[:2]
    header = kind + b"\n%d %d\n-1\n" % (width, height)
    Path(path).write_bytes(header + np.ascontiguousarray(image[::-1]).tobytes())
