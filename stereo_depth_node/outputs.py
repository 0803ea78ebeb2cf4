"""Writing one stereo result to files: KITTI PNG, PFM, colour figures, depth and a PLY cloud."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .camera import StereoCamera
from .data.pfm import write_pfm
from .estimator import StereoResult
from .images import display_uint8
from .ply import write_ply
from .visualize import depth_figure, disparity_figure

KITTI_DISPARITY_SCALE = 256.0


def disparity_to_kitti_png(disparity: np.ndarray) -> np.ndarray:
    """uint16 image with value = d * 256, 0 where invalid (KITTI's encoding)."""
    scaled = np.nan_to_num(disparity, nan=0.0) * KITTI_DISPARITY_SCALE
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


def write_result(out_dir: str | os.PathLike, left_rgb: np.ndarray, result: StereoResult,
                 max_disparity: float, camera: StereoCamera | None = None) -> list[Path]:
    """Write every output for one pair (left image H x W x 3) into `out_dir`; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save_image(name: str, image: np.ndarray) -> None:
        path = out / name
        if not cv2.imwrite(os.fspath(path), image):
            raise OSError(f"could not write {path}")
        written.append(path)

    disparity = result.disparity
    save_image("disparity.png", disparity_to_kitti_png(disparity))
    # Middlebury and ETH3D mark unknown disparity with inf in PFM files.
    write_pfm(out / "disparity.pfm", np.where(np.isfinite(disparity), disparity, np.inf))
    written.append(out / "disparity.pfm")
    save_image("disparity_color.png", disparity_figure(disparity, max_disparity))
    if camera is not None:
        depth = camera.depth_from_pixel_shift(disparity)
        np.save(out / "depth.npy", depth)
        write_pfm(out / "depth.pfm", np.where(np.isfinite(depth), depth, np.inf))
        written += [out / "depth.npy", out / "depth.pfm"]
        save_image("depth_color.png", depth_figure(depth))
        write_ply(out / "cloud.ply", camera.points_from_depth(depth), display_uint8(left_rgb))
        written.append(out / "cloud.ply")
    return written
