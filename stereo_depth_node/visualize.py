"""Colour-mapped disparity and depth images with a labelled colour bar; a plain line plot."""
from __future__ import annotations

from typing import Sequence

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


def _text_width(text: str, size: float) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, 1)[0][0]


def line_plot(points: Sequence[tuple[float, float]], title: str, x_label: str,
              width: int = 640, height: int = 360) -> np.ndarray:
    """BGR image of the points' y against x, with the axes' ranges written at their ends (a
    training run's loss curve; matplotlib is not a dependency for one figure)."""
    if len(points) < 2:
        raise ValueError(f"a line needs at least 2 points, got {len(points)}")
    xs, ys = (np.array(values, dtype=np.float64) for values in zip(*points))
    left, right, top, bottom = 70, 20, 34, 44
    image = np.full((height, width, 3), 255, np.uint8)
    x_span, y_span = max(xs.max() - xs.min(), 1e-9), max(ys.max() - ys.min(), 1e-9)
    columns = left + (xs - xs.min()) / x_span * (width - left - right)
    rows = height - bottom - (ys - ys.min()) / y_span * (height - top - bottom)
    line = np.stack([columns, rows], axis=1).round().astype(np.int32)
    cv2.polylines(image, [line], False, (160, 80, 0), 2, cv2.LINE_AA)
    black, font = (0, 0, 0), cv2.FONT_HERSHEY_SIMPLEX
    cv2.line(image, (left, top), (left, height - bottom), black, 1)
    cv2.line(image, (left, height - bottom), (width - right, height - bottom), black, 1)
    labels = ((title, (left, 22), 0.55), (f"{ys.max():.3g}", (4, top + 4), 0.45),
              (f"{ys.min():.3g}", (4, height - bottom), 0.45),
              (f"{xs.min():.0f}", (left - 4, height - bottom + 18), 0.45),
              (f"{xs.max():.0f}", (width - right - _text_width(f"{xs.max():.0f}", 0.45),
                                   height - bottom + 18), 0.45),
              (x_label, (width // 2 - 20, height - 10), 0.45))
    for text, origin, size in labels:
        cv2.putText(image, text, origin, font, size, black, 1, cv2.LINE_AA)
    return image
