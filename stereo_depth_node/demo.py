"""The demo's stereo sequence with ground truth: the Middlebury 2014 motorcycle pair that
scikit-image ships, with its real calibration, and rendered synthetic scenes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import StereoCamera
from .data.generator import GeneratorConfig, SyntheticStereo

# From scikit-image's docstring of data.stereo_motorcycle (calibration of the 4x down-sampled pair).
MOTORCYCLE_CAMERA = StereoCamera(fx=994.978, fy=994.978, cx=311.193, cy=254.877,
                                 cx_right=311.193 + 31.086, baseline=0.193001)
DEMO_MAX_DISPARITY = 64
DEMO_SYNTHETIC_FRAMES = 8
SYNTHETIC_SIZE = (240, 320)
SYNTHETIC_CAMERA = StereoCamera.centred(SYNTHETIC_SIZE[1], SYNTHETIC_SIZE[0], focal=320.0,
                                        baseline=0.1)


@dataclass
class DemoFrame:
    name: str
    left: np.ndarray                 # uint8 RGB
    right: np.ndarray
    camera: StereoCamera
    disparity: np.ndarray            # ground-truth pixel shift x_l - x_r, NaN where unknown
    occlusion: np.ndarray | None     # True where the left pixel is hidden in the right view


def motorcycle_frame() -> DemoFrame:
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    truth = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
    return DemoFrame("motorcycle", left, right, MOTORCYCLE_CAMERA, truth, None)


def synthetic_frames(count: int, seed: int = 2024) -> list[DemoFrame]:
    height, width = SYNTHETIC_SIZE
    generator = SyntheticStereo(GeneratorConfig(height=height, width=width,
                                                max_disparity=DEMO_MAX_DISPARITY, min_layers=5,
                                                max_layers=15), seed=seed)
    batch = generator.batch(0, count)
    lefts, rights = batch.images_uint8()
    return [DemoFrame(f"synthetic_{i}", lefts[i], rights[i], SYNTHETIC_CAMERA,
                      batch.disparity[i].numpy(), batch.occlusion[i].numpy())
            for i in range(count)]


def demo_sequence(synthetic_count: int = DEMO_SYNTHETIC_FRAMES) -> list[DemoFrame]:
    return [motorcycle_frame(), *synthetic_frames(synthetic_count)]
