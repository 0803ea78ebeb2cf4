"""Colour-mapped disparity and depth images with a labelled colour bar."""
from __future__ import annotations

import cv2
import numpy as np

BAR_WIDTH_PX = 80


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None
             ) -> tuple[np.ndarray, float, float]:
    """BGR uint8 image with the turbo colour map; NaN and inf are black. Returns the range used."""
    finite = np.isfinite(values)
    if vmin is None:
        vmin = float(np.min(values[finite])) if finite.any() else 0.0
    if vmax is None:
        vmax = float(np.max(values[finite])) if finite.any() else 1.0
    span = max(vmax - vmin, 1e-6)
    scaled = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / span, 0.0, 1.0)
    image = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    image[~finite] = 0
    return image, vmin, vmax


def with_color_bar(image_bgr: np.ndarray, vmin: float, vmax: float, label: str) -> np.ndarray:
    """The image with a vertical colour bar on its right, labelled with the range and unit."""
    height = image_bgr.shape[0]
    ramp = np.linspace(vmax, vmin, height, dtype=np.float32)[:, None]
    bar, _, _ = colorize(np.repeat(ramp, 20, axis=1), vmin, vmax)
    panel = np.full((height, BAR_WIDTH_PX, 3), 255, np.uint8)
    panel[:, 4:24] = bar
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    for text, y in ((f"{vmax:.1f}", 12), (f"{(vmin + vmax) / 2:.1f}", height // 2),
                    (f"{vmin:.1f}", height - 4), (label, height // 4)):
        cv2.putText(panel, text, (28, y), font, size, (0, 0, 0), 1, cv2.LINE_AA)
    return np.hstack([image_bgr, panel])


def disparity_figure(disparity: np.ndarray, max_disparity: float | None = None) -> np.ndarray:
    image, vmin, vmax = colorize(disparity, 0.0, max_disparity)
    return with_color_bar(image, vmin, vmax, "px")


def depth_figure(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    image, vmin, vmax = colorize(depth, None, max_depth)
    return with_color_bar(image, vmin, vmax, "m")
