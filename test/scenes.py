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



def bayer_mosaic(rgb: np.ndarray, cell: str) -> np.ndarray:
    """What a colour-filter sensor records of `rgb`: one channel a pixel, in the 2x2 `cell`
    (e.g. "rggb": red top-left, blue bottom-right) repeated over the image."""
    mosaic = np.empty(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(cell):
        row, column = divmod(index, 2)
        mosaic[row::2, column::2] = rgb[row::2, column::2, "rgb".index(colour)]
    return mosaic


def yuv422(luma: np.ndarray, u: int, v: int, order: str) -> np.ndarray:
    """H x W x 2 bytes of 4:2:2 YUV with luma `luma` and one chroma (u, v) everywhere, in the
    byte order of ROS's yuv422 ("UYVY") or yuv422_yuy2 ("YUY2")."""
    out = np.empty((*luma.shape, 2), np.uint8)
    luma_at, chroma_at = (1, 0) if order == "UYVY" else (0, 1)
    out[:, :, luma_at] = luma
    out[:, 0::2, chroma_at], out[:, 1::2, chroma_at] = u, v
    return out
