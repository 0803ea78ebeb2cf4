"""One stereo frame from images and calibration to every output the node publishes (no ROS)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .camera import StereoCamera
from .errors import InputError
from .estimator import StereoEstimator
from .images import SignificantBits, as_rgb, display_uint8


@dataclass
class OutputSettings:
    """Thresholds that may change between frames (the node's runtime parameters)."""

    confidence_threshold: float = 0.0
    min_depth: float = 0.0
    max_depth: float = 100.0
    use_color: bool = True
    want_depth: bool = True
    want_points: bool = True

    def validate(self) -> None:
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got "
                             f"{self.confidence_threshold}")
        if self.min_depth < 0.0:
            raise ValueError(f"min_depth must be >= 0, got {self.min_depth}")
        if self.max_depth <= self.min_depth:
            raise ValueError(f"max_depth ({self.max_depth}) must be greater than min_depth "
                             f"({self.min_depth})")


@dataclass
class FrameOutput:
    """Maps for the left view. `disparity` is d = x_l - x_r - (cx_l - cx_r), NaN where invalid.

    `camera` is None when the calibration cannot give depth; `camera_error` then says why, and
    depth and points are None. `cloud` is what a PointCloud2 carries: H x W x 4 float32 of x, y,
    z and, with `has_color`, the left image's colour packed as 0x00RRGGBB (PCL's 'rgb'), else 0;
    `points` is its first three channels (a view).
    """

    disparity: np.ndarray
    confidence: np.ndarray
    camera: StereoCamera | None
    camera_error: str | None
    depth: np.ndarray | None = None
    cloud: np.ndarray | None = None
    has_color: bool = False
    timings_ms: dict[str, float] | None = None
    input_scale: float = 1.0  # the one the disparity was matched at

    @property
    def points(self) -> np.ndarray | None:
        return None if self.cloud is None else self.cloud[..., :3]


def packed_rgb(image: np.ndarray, device: torch.device, bits: SignificantBits | None = None
               ) -> torch.Tensor:
    """H x W int32 0x00RRGGBB of an image (any input encoding, as colour shows it) on `device`;
    uint16 widened by `bits`, as the matcher saw it."""
    rgb = torch.from_numpy(np.ascontiguousarray(display_uint8(as_rgb(image, "left"), bits)))
    rgb = rgb.to(device).int()
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def to_host(planes: list[torch.Tensor]) -> list[np.ndarray]:
    """The planes as host arrays. From a GPU by one copy of all of them into pinned memory, which
    torch's host allocator hands out again once freed, so a stream of frames reuses the same few
    buffers; on the CPU they are the tensors' own memory."""
    if planes[0].device.type != "cuda":
        return [plane.numpy() for plane in planes]
    flat = torch.cat([plane.reshape(-1) for plane in planes])
    host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
    host.copy_(flat, non_blocking=True)
    torch.cuda.current_stream(flat.device).synchronize()
    arrays, start = [], 0
    for plane in planes:
        arrays.append(host[start:start + plane.numel()].view(plane.shape).numpy())
        start += plane.numel()
    return arrays


@torch.inference_mode()
def process_frame(estimator: StereoEstimator, left: np.ndarray, right: np.ndarray,
                  left_projection: np.ndarray, right_projection: np.ndarray,
                  settings: OutputSettings) -> FrameOutput:
    """Disparity always; depth and points when the projections give a valid stereo camera.
    Everything after matching runs on the device that matched; one copy brings every map to the
    host."""
    try:
        camera: StereoCamera | None = StereoCamera.from_projections(left_projection,
                                                                    right_projection)
        camera_error = None
    except InputError as exc:
        camera, camera_error = None, str(exc)
    result = estimator.estimate_maps(left, right)
    shift, confidence = result.disparity, result.confidence
    nan = torch.tensor(float("nan"), device=shift.device)
    if settings.confidence_threshold > 0.0:
        shift = torch.where(confidence >= settings.confidence_threshold, shift, nan)
    offset = camera.disparity_offset if camera is not None else 0.0
    disparity = shift - torch.tensor(offset, dtype=torch.float32, device=shift.device)
    planes = [disparity, confidence]
    want_depth = camera is not None and (settings.want_depth or settings.want_points)
    want_points = want_depth and settings.want_points
    has_color = want_points and settings.use_color
    if want_depth:
        depth = camera.depth_from_disparity(disparity)
        depth = torch.where((depth < settings.min_depth) | (depth > settings.max_depth),
                            nan, depth)
        planes.append(depth)
    if want_points:
        points = camera.points_from_depth(depth)
        color = (packed_rgb(left, shift.device, estimator.significant_bits) if has_color
                 else torch.zeros_like(depth, dtype=torch.int32))
        planes.append(torch.cat([points.view(torch.int32), color[..., None]], dim=-1))
    # Bits, not values, travel: the packed colour is no float, and a copy must not touch it.
    host = [array.view(np.float32) for array in to_host(
        [plane.view(torch.int32) if plane.dtype == torch.float32 else plane for plane in planes])]
    output = FrameOutput(host[0], host[1], camera, camera_error, has_color=has_color,
                         timings_ms=result.timings_ms, input_scale=result.input_scale)
    if want_depth:
        output.depth = host[2]
    if want_points:
        output.cloud = host[3]
    return output
