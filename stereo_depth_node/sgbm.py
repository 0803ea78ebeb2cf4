"""OpenCV semi-global block matching, the classical baseline behind the same estimator."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .errors import ConfigurationError, InputError
from .images import matching_size, to_uint8


class SGBMMatcher:
    """StereoSGBM (3-way) with the usual P1 = 8 c b^2, P2 = 32 c b^2 smoothness penalties."""

    name = "sgbm"

    def __init__(self, max_disparity: int, block_size: int = 5) -> None:
        if max_disparity <= 0 or max_disparity % 16:
            raise ConfigurationError(
                f"max_disparity must be a positive multiple of 16 for sgbm, got {max_disparity}")
        self.max_disparity = max_disparity
        self._matcher = cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=max_disparity, blockSize=block_size,
            P1=8 * 3 * block_size ** 2, P2=32 * 3 * block_size ** 2, disp12MaxDiff=1,
            uniquenessRatio=10, speckleWindowSize=100, speckleRange=2,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)

    def match(self, left_rgb: np.ndarray, right_rgb: np.ndarray, scale: float = 1.0,
              every_column: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Disparity (float32 px at input resolution, NaN where SGBM found none) and a 0/1
        validity map as confidence.

        SGBM leaves the first max_disparity columns without a match, since their search would
        leave the right image. `every_column` pads both images on the left by the search range
        first, so that those columns are matched too: the left-right check's mirrored pass needs
        them, since its first columns are the right view's last, where most left pixels land.
        """
        height, width = left_rgb.shape[:2]
        size = matching_size(height, width, scale)[::-1]  # OpenCV's (width, height)
        if size[0] <= self.max_disparity:
            # OpenCV would fail with an allocation of 2**64 bytes, naming no reason.
            raise InputError(
                f"sgbm matches {size[0]} px wide images here ({width} px at input_scale "
                f"{scale:g}), not wider than max_disparity {self.max_disparity}: the search "
                f"range must be narrower than the image (lower max_disparity, or raise "
                f"input_scale)")
        left, right = to_uint8(left_rgb), to_uint8(right_rgb)
        if scale != 1.0:
            # INTER_AREA averages when shrinking but repeats pixels when enlarging.
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            left, right = (cv2.resize(im, size, interpolation=interpolation)
                           for im in (left, right))
        if every_column:
            left, right = (cv2.copyMakeBorder(im, 0, 0, self.max_disparity, 0,
                                              cv2.BORDER_REPLICATE) for im in (left, right))
        fixed_point = self._matcher.compute(left, right)
        if every_column:
            fixed_point = np.ascontiguousarray(fixed_point[:, self.max_disparity:])
        if scale != 1.0:
            fixed_point = cv2.resize(fixed_point, (width, height),
                                     interpolation=cv2.INTER_NEAREST)
        valid = fixed_point >= 0
        disparity = np.where(valid, fixed_point.astype(np.float32) * (width / size[0] / 16.0),
                             np.nan)
        return disparity.astype(np.float32), valid.astype(np.float32)

    def match_maps(self, left_rgb: np.ndarray, right_rgb: np.ndarray, scale: float = 1.0,
                   every_column: bool = False) -> torch.Tensor:
        """`match` as a 2 x H x W CPU tensor (disparity, confidence), as the networks give it."""
        return torch.from_numpy(np.stack(self.match(left_rgb, right_rgb, scale, every_column)))
