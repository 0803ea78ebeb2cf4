"""Reading stereo calibration files into a StereoCamera."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .camera import StereoCamera
from .errors import ConfigurationError, InputError


def _camera_matrix(text: str) -> np.ndarray:
    numbers = [float(v) for v in re.split(r"[\s;]+", text.strip(" []")) if v]
    if len(numbers) != 9:
        raise ValueError(f"expected 9 numbers, got {len(numbers)}")
    return np.array(numbers).reshape(3, 3)


def camera_from_options(calib: str | os.PathLike | None, focal: float | None,
                        baseline: float | None, width: int, height: int) -> StereoCamera | None:
    """The camera of --calib FILE or --focal F --baseline B (principal point at the centre);
    None when neither is given."""
    if calib and (focal is not None or baseline is not None):
        raise ConfigurationError("give either --calib or --focal/--baseline, not both")
    if (focal is None) != (baseline is None):
        raise ConfigurationError("--focal and --baseline go together")
    if calib:
        return read_middlebury_calib(calib, (width, height))
    return None if focal is None else StereoCamera.centred(width, height, focal, baseline)


def read_middlebury_calib(path: str | os.PathLike, image_size: tuple[int, int] | None = None
                          ) -> StereoCamera:
    """Middlebury 2014 / ETH3D `calib.txt`: cam0, cam1 (3x3), baseline in millimetres. With
    `image_size` (width, height), a file whose width and height name another size is refused:
    its principal point would place every point wrongly."""
    fields: dict[str, str] = {}
    try:
        for line in Path(path).read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                fields[key.strip()] = value.strip()
        left, right = _camera_matrix(fields["cam0"]), _camera_matrix(fields["cam1"])
        baseline_m = float(fields["baseline"]) / 1000.0
        size = (int(fields["width"]), int(fields["height"])) if "width" in fields else None
    except (OSError, KeyError, ValueError) as exc:
        # A KeyError's own text is the bare key.
        reason = f"no {exc.args[0] + '='!r} line" if isinstance(exc, KeyError) else exc
        raise InputError(f"cannot read calibration {os.fspath(path)!r} (Middlebury calib.txt "
                         f"with cam0, cam1 and baseline in mm): {reason}") from exc
    if image_size and size and size != image_size:
        raise InputError(f"calibration {os.fspath(path)!r} is for {size[0]}x{size[1]} px "
                         f"images, but the images are {image_size[0]}x{image_size[1]} px")
    return StereoCamera(fx=left[0, 0], fy=left[1, 1], cx=left[0, 2], cy=left[1, 2],
                        cx_right=right[0, 2], baseline=baseline_m)
