"""Rectification of raw camera images from their calibration (the camera_info model: D, K, R, P).

The maps from rectified to raw pixels are computed once per calibration and reused for every
frame; a changed calibration (a recalibrated camera, a different bag) computes them again. Frames
are remapped with OpenCV on the CPU, or with torch's grid_sample on the network's GPU (the maps
stay there), which takes the per-pixel work off a robot's CPU.
Distortion models as ROS names them: plumb_bob and rational_polynomial (OpenCV's standard model,
5 and 8 coefficients) and equidistant (OpenCV's fisheye model, 4 coefficients).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

COEFFICIENTS = {"plumb_bob": (4, 5, 8), "rational_polynomial": (8, 12, 14),
                "equidistant": (4,)}


@dataclass(frozen=True)
class CameraModel:
    """One camera's calibration, as a camera_info message carries it (tuples: hashable)."""

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]          # 3x3 row-major
    r: tuple[float, ...]          # 3x3 row-major, the rectifying rotation
    p: tuple[float, ...]          # 3x4 row-major, the rectified projection
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # x_offset, y_offset, width, height

    def check(self, name: str) -> None:
        """InputError naming the field this package cannot rectify with."""
        for field in ("binning_x", "binning_y"):
            if getattr(self, field) > 1:
                raise InputError(f"{name} {field} = {getattr(self, field)}: binned images are not "
                                 f"supported with rectify:=true (publish full-resolution images)")
        x, y, width, height = self.roi
        if (width, height) != (0, 0) and (x, y, width, height) != (0, 0, self.width, self.height):
            raise InputError(f"{name} roi = (x_offset {x}, y_offset {y}, width {width}, height "
                             f"{height}): a region of interest is not supported with "
                             f"rectify:=true (publish the full image)")
        if self.distortion_model not in COEFFICIENTS:
            raise InputError(f"{name} distortion_model {self.distortion_model!r} is not "
                             f"supported; expected one of {', '.join(COEFFICIENTS)}")
        if any(self.d) and len(self.d) not in COEFFICIENTS[self.distortion_model]:
            raise InputError(f"{name} D has {len(self.d)} coefficients; "
                             f"{self.distortion_model} takes "
                             f"{' or '.join(map(str, COEFFICIENTS[self.distortion_model]))}")
        if self.k[0] == 0 or self.k[4] == 0 or self.p[0] == 0 or self.p[5] == 0:
            raise InputError(f"{name} has zero focal length (K[0]={self.k[0]}, K[4]={self.k[4]}, "
                             f"P[0]={self.p[0]}, P[5]={self.p[5]}): the camera is not calibrated")
        if not all(np.isfinite(self.d + self.k + self.r + self.p)):
            raise InputError(f"{name} D, K, R or P contains NaN or infinity")

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.k, np.float64).reshape(3, 3), np.array(self.d, np.float64),
                np.array(self.r, np.float64).reshape(3, 3),
                np.array(self.p, np.float64).reshape(3, 4))


def rectification_maps(model: CameraModel, map_type: int = cv2.CV_16SC2
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For each rectified pixel, where to read the raw image: OpenCV's fixed-point map pair
    (fast cv2.remap), or with CV_32FC1 the x and y positions in pixels."""
    k, d, r, p = model.matrices()
    size = (model.width, model.height)
    if model.distortion_model == "equidistant":
        return cv2.fisheye.initUndistortRectifyMap(k, d[:4], r, p, size, map_type)
    return cv2.initUndistortRectifyMap(k, d, r, p, size, map_type)


def sampling_grid(model: CameraModel, device: torch.device) -> torch.Tensor:
    """1 x H x W x 2 grid for grid_sample (align_corners=True: -1 and 1 are the centres of the
    first and last raw pixel), the same positions cv2.remap reads."""
    map_x, map_y = rectification_maps(model, cv2.CV_32FC1)
    grid = np.stack([map_x * (2.0 / (model.width - 1)) - 1.0,
                     map_y * (2.0 / (model.height - 1)) - 1.0], axis=-1)
    return torch.from_numpy(grid.astype(np.float32))[None].to(device)


def remap_on(device_grid: torch.Tensor, image: np.ndarray) -> np.ndarray:
    """cv2.remap's bilinear, black-border result, computed where `device_grid` lives."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device_grid.device)
    planar = pixels.reshape(*image.shape[:2], -1).permute(2, 0, 1)[None].float()
    out = F.grid_sample(planar, device_grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)[0].permute(1, 2, 0)
    limit = np.iinfo(image.dtype).max
    out = out.round_().clamp_(0, limit).to(pixels.dtype).cpu().numpy()
    return out.reshape(image.shape[:2] + image.shape[2:])


def raw_to_rectified_points(model: CameraModel, points: np.ndarray) -> np.ndarray:
    """N x 2 raw pixel positions -> where they land in the rectified image (for synthesis and
    checks: the inverse of what the maps sample)."""
    k, d, r, p = model.matrices()
    points = np.asarray(points, np.float64).reshape(-1, 1, 2)
    if model.distortion_model == "equidistant":
        return cv2.fisheye.undistortPoints(points, k, d[:4], R=r, P=p).reshape(-1, 2)
    return cv2.undistortPoints(points, k, d, R=r, P=p).reshape(-1, 2)


def example_camera_models(width: int, height: int, fx: float, baseline: float,
                          distortion_model: str) -> tuple[CameraModel, CameraModel]:
    """Left and right model of a plausible raw stereo camera (for tests and benchmarks): lens
    distortion of the given model, intrinsics off the rectified ones and a rectifying rotation
    of about half a degree per camera; rectified focal `fx` and `baseline` (m)."""
    d = {"plumb_bob": (-0.12, 0.03, 0.0008, -0.0005, 0.0),
         "rational_polynomial": (-0.1, 0.02, 0.0005, -0.0004, 0.0, 0.01, 0.0, 0.0),
         "equidistant": (0.05, -0.01, 0.002, -0.0005)}[distortion_model]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    models = []
    for side, (yaw, roll, shift) in (("left", (0.6, 0.2, 3.0)), ("right", (-0.5, -0.3, -2.0))):
        r, _ = cv2.Rodrigues(np.radians([0.1, yaw, roll]))
        k = (fx * 0.96, 0.0, cx + shift, 0.0, fx * 0.965, cy - shift, 0.0, 0.0, 1.0)
        tx = 0.0 if side == "left" else -fx * baseline
        p = (fx, 0.0, cx, tx, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
        models.append(CameraModel(width, height, distortion_model, d, k,
                                  tuple(r.ravel().tolist()), p))
    return models[0], models[1]


class Rectifier:
    """Rectifies the images of named cameras, keeping each camera's maps until its model changes.

    `device` None remaps with OpenCV on the CPU; a torch device remaps there with grid_sample.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = None if device is None else torch.device(device)
        self._maps: dict[str, tuple[CameraModel, object]] = {}
        self.maps_computed = 0

    @property
    def backend(self) -> str:
        return "opencv" if self.device is None else f"torch on {self.device}"

    def maps(self, name: str, model: CameraModel):
        """The cached maps of camera `name` (OpenCV map pair, or a grid on the device)."""
        cached = self._maps.get(name)
        if cached is None or cached[0] != model:
            model.check(name)
            maps = (rectification_maps(model) if self.device is None else
                    sampling_grid(model, self.device))
            cached = (model, maps)
            self._maps[name] = cached
            self.maps_computed += 1
        return cached[1]

    def rectify(self, name: str, image: np.ndarray, model: CameraModel) -> np.ndarray:
        """The rectified image, the size of the calibration, bilinear, black outside the raw one.
        """
        if image.shape[:2] != (model.height, model.width):
            raise InputError(f"{name}: image is {image.shape[1]}x{image.shape[0]} px but the "
                             f"calibration is for {model.width}x{model.height}")
        maps = self.maps(name, model)
        if self.device is not None:
            return remap_on(maps, image)
        return cv2.remap(image, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
