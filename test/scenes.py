"""Small rendered scenes with exact ground truth, for tests."""
from __future__ import annotations

import cv2
import numpy as np

from stereo_depth_node.data.plane import band_limited_texture


def render_two_layer_scene(height: int, width: int, background: int, foreground: int,
                           box: tuple[int, int, int, int], seed: int = 0):
    """A textured background at `background` px and a textured rectangle at `foreground` px.

    `box` = (top, bottom, left, right) of the rectangle in right-image columns. Integer
    disparities keep the rendering exact. Returns (left, right, disparity, occluded) where
    `occluded` marks left pixels whose background point is hidden behind the rectangle on the right.
    """
    rng = np.random.default_rng(seed)
    top, bottom, x0, x1 = box
    back = band_limited_texture(height, width + background, rng)
    front = band_limited_texture(height, x1 - x0, rng)
    right = back[:, background:background + width].copy()
    right[top:bottom, x0:x1] = front[top:bottom]
    left = back[:, :width].copy()  # left x sees background point x - background (right coords)
    disparity = np.full((height, width), float(background), np.float32)
    left[top:bottom, x0 + foreground:x1 + foreground] = front[top:bottom]
    disparity[top:bottom, x0 + foreground:x1 + foreground] = foreground
    occluded = np.zeros((height, width), bool)
    occluded[top:bottom, x0 + background:x0 + foreground] = True
    return (np.clip(left * 255 + 0.5, 0, 255).astype(np.uint8),
            np.clip(right * 255 + 0.5, 0, 255).astype(np.uint8), disparity, occluded)


def raw_view(rectified: np.ndarray, model) -> np.ndarray:
    """What a camera with calibration `model` (a rectification.CameraModel) recorded, given the
    rectified image: each raw pixel reads the rectified image where rectification puts it."""
    from stereo_depth_node.rectification import raw_to_rectified_points

    rows, cols = np.mgrid[0:model.height, 0:model.width]
    raw = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    where = raw_to_rectified_points(model, raw).astype(np.float32)
    map_x = where[:, 0].reshape(model.height, model.width)
    map_y = where[:, 1].reshape(model.height, model.width)
    return cv2.remap(rectified, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

