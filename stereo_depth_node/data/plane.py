"""A rectified stereo pair of a textured fronto-parallel plane at a known disparity.

Used as ground truth that needs no dataset: every left pixel x sees the texture point that the
right view shows at x - disparity.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..images import unit_float_to_uint8


def band_limited_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """float32 H x W x 3 texture in [0, 1]: noise at three scales, smooth enough to interpolate."""
    texture = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((1.2, 0.5), (3.0, 0.3), (8.0, 0.2)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        texture += weight * blurred / (blurred.std() + 1e-6)
    return np.clip(0.5 + 0.18 * texture, 0.0, 1.0)


def render_plane_pair(height: int, width: int, disparity: float, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB (left, right) of a plane whose disparity is `disparity` px everywhere."""
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(disparity)) + 2
    texture = band_limited_texture(height, width + margin, rng)
    right = texture[:, margin:margin + width]
    map_x = (np.arange(width, dtype=np.float32)[None, :] + np.float32(margin - disparity))
    map_x = np.repeat(map_x, height, axis=0)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    left = cv2.remap(texture, map_x, map_y, interpolation=cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)
    return unit_float_to_uint8(left), unit_float_to_uint8(right)
