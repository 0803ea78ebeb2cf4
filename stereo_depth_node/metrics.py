"""Stereo error metrics: EPE, bad-N, KITTI D1 and density, split into occluded / non-occluded.

Conventions (those of the KITTI and Middlebury devkits):
- Ground truth counts where it is finite and positive; pixels at or above `max_disparity` are
  excluded (and counted), since no method searching that range can reach them.
- A hole in the estimate (NaN, as SGBM leaves) counts as an error for bad-N and D1. For EPE,
  holes are filled first by background interpolation along the row (the smaller of the nearest
  answered disparities to the left and right), as the KITTI devkit does; `density` reports how
  many pixels the method answered itself.
- bad-N: error > N px. D1: error > 3 px and > 5 % of the true disparity.
"""
from __future__ import annotations

import numpy as np

BAD_THRESHOLDS = (1.0, 2.0, 3.0)


def fill_holes_with_background(disparity: np.ndarray) -> np.ndarray:
    """Holes (NaN, inf) replaced along their row by the smaller of the nearest answered
    disparities to the left and to the right; at an image border, by the one that exists.

    The smaller disparity is the farther surface: a hole is mostly an occlusion, which belongs to
    the background (the KITTI devkit's interpolateBackground). A row with no answer stays NaN.
    """
    values = np.asarray(disparity, dtype=np.float32)
    answered = np.isfinite(values)
    height, width = values.shape
    columns = np.broadcast_to(np.arange(width), (height, width))
    # Column of the nearest answer at or left of each pixel (-1: none), and at or right (width).
    left_index = np.maximum.accumulate(np.where(answered, columns, -1), axis=1)
    right_index = np.minimum.accumulate(np.where(answered, columns, width)[:, ::-1],
                                        axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    left = np.where(left_index >= 0, values[rows, np.clip(left_index, 0, width - 1)], np.inf)
    right = np.where(right_index < width, values[rows, np.clip(right_index, 0, width - 1)],
                     np.inf)
    background = np.minimum(left, right)
    filled = np.where(answered, values, np.where(np.isfinite(background), background, np.nan))
    return filled.astype(np.float32)


def _region_metrics(error: np.ndarray, filled_error: np.ndarray, truth: np.ndarray,
                    answered: np.ndarray) -> dict[str, float]:
    count = int(error.size)
    if count == 0:
        return {"pixels": 0}
    result = {"pixels": count, "epe": float(filled_error.mean()),
              "density": float(100.0 * answered.mean())}
    for threshold in BAD_THRESHOLDS:
        result[f"bad{threshold:g}"] = float(100.0 * np.mean(error > threshold))
    result["d1"] = float(100.0 * np.mean((error > 3.0) & (error > 0.05 * truth)))
    return result


def scored_truth(truth: np.ndarray, max_disparity: float | None = None) -> np.ndarray:
    """Where the ground truth counts: finite, positive and, with `max_disparity`, below it."""
    truth = np.asarray(truth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(truth) & (truth > 0)
        return valid & (truth < max_disparity) if max_disparity else valid


def disparity_metrics(estimate: np.ndarray, truth: np.ndarray,
                      occlusion: np.ndarray | None = None, max_disparity: float | None = None
                      ) -> dict[str, object]:
    """Metrics over all valid ground truth and, with an occlusion mask, over 'noc' and 'occ'.

    `occlusion`: True where the left pixel is not visible in the right view.
    Returns {'all': {...}, 'noc': {...}, 'occ': {...}, 'excluded_above_max': n}, each region with
    pixels, epe, density, bad1, bad2, bad3, d1 (percentages).
    """
    truth = np.asarray(truth, dtype=np.float32)
    estimate = np.asarray(estimate, dtype=np.float32)
    if estimate.shape != truth.shape:
        raise ValueError(f"estimate is {estimate.shape} but ground truth is {truth.shape}")
    valid = scored_truth(truth)
    with np.errstate(invalid="ignore"):
        excluded = valid & (truth >= max_disparity) if max_disparity else np.zeros_like(valid)
    valid &= ~excluded
    answered = np.isfinite(estimate)
    error = np.where(answered, np.abs(estimate - truth), np.inf)
    # A row without any answer has nothing to fill from; 0 (infinitely far) is the farthest guess.
    filled_error = np.abs(np.nan_to_num(fill_holes_with_background(estimate), nan=0.0) - truth)
    regions = {"all": valid}
    if occlusion is not None:
        regions["noc"] = valid & ~occlusion
        regions["occ"] = valid & occlusion
    result: dict[str, object] = {
        name: _region_metrics(error[mask], filled_error[mask], truth[mask], answered[mask])
        for name, mask in regions.items()}
    result["excluded_above_max"] = int(excluded.sum())
    return result
