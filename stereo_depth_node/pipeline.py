"""One stereo frame from images and calibration to every output the node publishes (no ROS)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import StereoCamera
from .errors import InputError
from .estimator import StereoEstimator
from .images import as_rgb, to_uint8


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
    depth and points are None.
    """

    disparity: np.ndarray
    confidence: np.ndarray
    camera: StereoCamera | None
    camera_error: str | None
    depth: np.ndarray | None = None
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    timings_ms: dict[str, float] | None = None
    input_scale: float = 1.0  # the one the disparity was matched at


def process_frame(estimator: StereoEstimator, left: np.ndarray, right: np.ndarray,
                  left_projection: np.ndarray, right_projection: np.ndarray,
                  settings: OutputSettings) -> FrameOutput:
    """Disparity always; depth and points when the projections give a valid stereo camera."""
    try:
        camera: StereoCamera | None = StereoCamera.from_projections(left_projection,
                                                                    right_projection)
        camera_error = None
    except InputError as exc:
        camera, camera_error = None, str(exc)
    result = estimator.estimate(left, right)
    shift = result.disparity
    if settings.confidence_threshold > 0.0:
        shift = np.where(result.confidence >= settings.confidence_threshold, shift, np.nan)
    offset = camera.disparity_offset if camera is not None else 0.0
    disparity = (shift - np.float32(offset)).astype(np.float32)
    output = FrameOutput(disparity, result.confidence, camera, camera_error,
                         timings_ms=result.timings_ms, input_scale=result.input_scale)
    if camera is None or not (settings.want_depth or settings.want_points):
        return output
    depth = camera.depth_from_disparity(disparity)
    with np.errstate(invalid="ignore"):
        depth[(depth < settings.min_depth) | (depth > settings.max_depth)] = np.nan
    output.depth = depth
    if settings.want_points:
        output.points = camera.points_from_depth(depth)
        if settings.use_color:
            output.colors = to_uint8(as_rgb(left, "left"))
    return output
