"""Rectified stereo camera model: disparity <-> depth <-> 3-D points (REP 103 optical frame)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InputError


def _matrix(info: Any, name: str, shape: tuple[int, int], side: str) -> np.ndarray:
    """`info.k` / `info.p` (ROS 2), `info.K` / `info.P` (ROS 1 style) or `info['k']` as an array."""
    for key in (name.lower(), name.upper()):
        value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
        if value is not None:
            array = np.asarray(value, dtype=np.float64)
            if array.size != shape[0] * shape[1]:
                raise InputError(f"{side} camera_info {name} has {array.size} values, "
                                 f"expected {shape[0] * shape[1]}")
            return array.reshape(shape)
    raise InputError(f"{side} camera_info has no {name} matrix")


@dataclass(frozen=True)
class StereoCamera:
    """Intrinsics of the rectified left camera and the stereo baseline.

    disparity_offset = cx_left - cx_right: a network's pixel shift x_l - x_r minus this offset is
    the disparity d with Z = fx * baseline / d.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    cx_right: float
    baseline: float

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy, self.cx_right, self.baseline)
        if not all(np.isfinite(values)):
            raise InputError(f"camera model has a non-finite value: fx={self.fx}, fy={self.fy}, "
                             f"cx={self.cx}, cy={self.cy}, cx_right={self.cx_right}, "
                             f"baseline={self.baseline}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"focal length must be positive, got fx={self.fx}, fy={self.fy}")
        if self.baseline <= 0:
            raise InputError(f"baseline must be positive, got {self.baseline} m")

    @classmethod
    def centred(cls, width: int, height: int, focal: float, baseline: float) -> "StereoCamera":
        """Square pixels, principal point at the image centre in both views."""
        cx, cy = (width - 1) / 2, (height - 1) / 2
        return cls(fx=focal, fy=focal, cx=cx, cy=cy, cx_right=cx, baseline=baseline)

    @property
    def disparity_offset(self) -> float:
        return self.cx - self.cx_right

    @classmethod
    def from_projections(cls, left_p: Sequence[float] | np.ndarray,
                         right_p: Sequence[float] | np.ndarray) -> "StereoCamera":
        """From the 3x4 projection matrices of the rectified pair (CameraInfo.p)."""
        left = np.asarray(left_p, dtype=np.float64).reshape(3, 4)
        right = np.asarray(right_p, dtype=np.float64).reshape(3, 4)
        for side, p in (("left", left), ("right", right)):
            if not np.all(np.isfinite(p)):
                raise InputError(f"{side} camera_info P contains NaN or inf: {p.ravel().tolist()}")
            if p[0, 0] == 0 or p[1, 1] == 0:
                raise InputError(f"{side} camera_info P has zero focal length "
                                 f"(P[0]={p[0, 0]}, P[5]={p[1, 1]})")
        if right[0, 3] >= 0:
            raise InputError(
                f"right camera_info P[3] = {right[0, 3]} must be negative (P[3] = -fx * baseline); "
                f"without it there is no baseline")
        return cls(fx=left[0, 0], fy=left[1, 1], cx=left[0, 2], cy=left[1, 2],
                   cx_right=right[0, 2], baseline=-right[0, 3] / right[0, 0])

    @classmethod
    def from_camera_info(cls, left_info: Any, right_info: Any) -> "StereoCamera":
        """From two CameraInfo messages or anything with their `p` field."""
        return cls.from_projections(_matrix(left_info, "P", (3, 4), "left"),
                                    _matrix(right_info, "P", (3, 4), "right"))

    def depth_from_pixel_shift(self, shift: np.ndarray) -> np.ndarray:
        """Depth in metres (float32) from x_l - x_r; NaN where it gives no point in front."""
        disparity = np.asarray(shift, dtype=np.float32) - np.float32(self.disparity_offset)
        return self.depth_from_disparity(disparity)

    def depth_from_disparity(self, disparity: np.ndarray) -> np.ndarray:
        """Z = fx * baseline / d; NaN where d <= 0 or is NaN."""
        disparity = np.asarray(disparity, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.float32(self.fx * self.baseline) / disparity
        return np.where(disparity > 0, depth, np.nan).astype(np.float32)

    def disparity_from_depth(self, depth: np.ndarray) -> np.ndarray:
        """d = fx * baseline / Z; NaN where Z <= 0 or is NaN."""
        depth = np.asarray(depth, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = np.float32(self.fx * self.baseline) / depth
        return np.where(depth > 0, disparity, np.nan).astype(np.float32)

    def points_from_depth(self, depth: np.ndarray) -> np.ndarray:
        """Organized H x W x 3 float32 points (X right, Y down, Z forward); NaN where depth is."""
        depth = np.asarray(depth, dtype=np.float32)
        height, width = depth.shape
        u = np.arange(width, dtype=np.float32)[None, :]
        v = np.arange(height, dtype=np.float32)[:, None]
        x = (u - np.float32(self.cx)) * depth / np.float32(self.fx)
        y = (v - np.float32(self.cy)) * depth / np.float32(self.fy)
        return np.stack([x, y, depth], axis=-1)
