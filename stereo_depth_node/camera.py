"""Rectified stereo camera model: disparity <-> depth <-> 3-D points (REP 103 optical frame).
The conversions take numpy arrays or torch tensors and give back the same kind; a tensor stays on
its device, so that a frame's maps are converted where the network made them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import numpy as np
import torch

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


Maps = TypeVar("Maps", np.ndarray, torch.Tensor)


def _no_baseline(left: np.ndarray, right: np.ndarray) -> str:
    """Why two projection matrices whose P[3] give no baseline give none, with the likely cause."""
    text = (f"right camera_info P[3] = {right[0, 3]} must be "
            f"{'negative' if left[0, 3] == 0 else f'below left camera_info P[3] = {left[0, 3]}'}"
            f" (P[3] = -fx * baseline); without it there is no baseline")
    if right[0, 3] == 0 and left[0, 3] != 0:
        return (text + "; the left camera_info carries the offset instead, where ROS has it on "
                "the right camera: are the left and right topics swapped?")
    if abs(right[1, 3] - left[1, 3]) > abs(right[0, 3] - left[0, 3]):
        return (text + "; its P[7] (Ty) makes the pair a vertical one, which this node does not "
                "match (it searches along rows)")
    return text


def _float_tensor(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.float()
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def _like(source: Maps, result: torch.Tensor) -> Maps:
    """Maps come back as they came in: numpy arrays as arrays, tensors on their device."""
    return result if isinstance(source, torch.Tensor) else result.numpy()


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
            if p[0, 0] <= 0 or p[1, 1] <= 0:
                kind = "zero" if 0 in (p[0, 0], p[1, 1]) else "negative"
                raise InputError(f"{side} camera_info P has {kind} focal length "
                                 f"(P[0]={p[0, 0]}, P[5]={p[1, 1]})")
        # P[3] = -fx * baseline counts from the first camera, whose own P[3] is 0 by convention;
        # a rig that gives the left one an offset too has the difference as its baseline.
        if right[0, 3] >= left[0, 3]:
            raise InputError(_no_baseline(left, right))
        # Z = (P_l[3] - P_r[3]) / d: image_geometry's getZ, -P_r[3] / d, where the left P[3] is 0,
        # and what the DisparityImage's f t / d gives, whatever the two P[0].
        return cls(fx=left[0, 0], fy=left[1, 1], cx=left[0, 2], cy=left[1, 2],
                   cx_right=right[0, 2], baseline=(left[0, 3] - right[0, 3]) / left[0, 0])

    @staticmethod
    def pair_mismatch(left_p: Sequence[float] | np.ndarray, right_p: Sequence[float] | np.ndarray,
                      largest_disparity: float) -> str | None:
        """What in two projection matrices says they are no one rectified horizontal pair (one
        focal length, one row of principal points, no vertical offset), or None. Such a pair
        still gives depth: matching runs along rows and Z = (P_l[3] - P_r[3]) / d. Differences
        the matchers do not notice are let pass: half a pixel of vertical offset anywhere in the
        range searched (up to `largest_disparity`), 0.1 % of focal length (drivers round)."""
        left = np.asarray(left_p, dtype=np.float64).reshape(3, 4)
        right = np.asarray(right_p, dtype=np.float64).reshape(3, 4)
        found = []
        for name, index in (("fx", (0, 0)), ("fy", (1, 1))):
            if abs(left[index] - right[index]) > 1e-3 * abs(left[index]):
                found.append(f"{name} {left[index]:g} against {right[index]:g} "
                             f"(P[{4 * index[0] + index[1]}])")
        if abs(left[1, 2] - right[1, 2]) > 0.5:
            found.append(f"cy {left[1, 2]:g} against {right[1, 2]:g} (P[6])")
        # A vertical baseline offsets the rows by d * dTy / dTx at disparity d.
        rows_apart = abs((left[1, 3] - right[1, 3]) / (left[0, 3] - right[0, 3]))
        if rows_apart * max(largest_disparity, 0.0) > 0.5:
            found.append(f"P[7] (Ty) {left[1, 3]:g} against {right[1, 3]:g}, a vertical offset "
                         f"of {rows_apart * largest_disparity:.2g} px at the largest disparity "
                         f"searched")
        return "; ".join(found) or None

    @classmethod
    def from_camera_info(cls, left_info: Any, right_info: Any) -> "StereoCamera":
        """From two CameraInfo messages or anything with their `p` field."""
        return cls.from_projections(_matrix(left_info, "P", (3, 4), "left"),
                                    _matrix(right_info, "P", (3, 4), "right"))

    def depth_from_pixel_shift(self, shift: Maps) -> Maps:
        """Depth in metres (float32) from x_l - x_r; NaN where it gives no point in front."""
        tensor = _float_tensor(shift)
        return _like(shift, self.depth_from_disparity(tensor - self._constant(
            self.disparity_offset, tensor)))

    def depth_from_disparity(self, disparity: Maps) -> Maps:
        """Z = fx * baseline / d; NaN where d <= 0 or is NaN."""
        return _like(disparity, self._ratio(_float_tensor(disparity)))

    def disparity_from_depth(self, depth: Maps) -> Maps:
        """d = fx * baseline / Z; NaN where Z <= 0 or is NaN."""
        return _like(depth, self._ratio(_float_tensor(depth)))

    def points_from_depth(self, depth: Maps) -> Maps:
        """Organized H x W x 3 float32 points (X right, Y down, Z forward); NaN where depth is."""
        z = _float_tensor(depth)
        height, width = z.shape
        u = torch.arange(width, dtype=torch.float32, device=z.device)[None, :]
        v = torch.arange(height, dtype=torch.float32, device=z.device)[:, None]
        x = (u - self._constant(self.cx, z)) * z / self._constant(self.fx, z)
        y = (v - self._constant(self.cy, z)) * z / self._constant(self.fy, z)
        return _like(depth, torch.stack([x, y, z], dim=-1))

    def _ratio(self, values: torch.Tensor) -> torch.Tensor:
        """fx * baseline / values where values > 0, else NaN: depth <-> disparity both ways."""
        ratio = self._constant(self.fx * self.baseline, values) / values
        return torch.where(values > 0, ratio, torch.full_like(values, float("nan")))

    @staticmethod
    def _constant(value: float, like: torch.Tensor) -> torch.Tensor:
        # A float32 tensor on the maps' device, not a Python number: CUDA divides by a Python
        # number as a multiplication by its reciprocal, one rounding more than the CPU.
        return torch.tensor(value, dtype=torch.float32, device=like.device)
