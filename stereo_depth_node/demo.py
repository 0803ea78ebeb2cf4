"""The offline demo: the Middlebury 2014 motorcycle pair that scikit-image ships, with its real
calibration, through SGBM and the default network; files and an error report in one folder."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .camera import StereoCamera
from .estimator import StereoEstimator
from .outputs import write_result

# From scikit-image's docstring of data.stereo_motorcycle (calibration of the 4x down-sampled pair).
MOTORCYCLE_CAMERA = StereoCamera(fx=994.978, fy=994.978, cx=311.193, cy=254.877,
                                 cx_right=311.193 + 31.086, baseline=0.193001)
MOTORCYCLE_MAX_DISPARITY = 64


def motorcycle_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, ground-truth disparity with NaN where unknown)."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    return left, right, np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)


def disparity_errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """EPE and bad-3 over pixels with ground truth; holes (NaN) count as errors in bad-3."""
    known = np.isfinite(truth)
    error = np.abs(np.nan_to_num(estimate, nan=np.inf) - truth)[known]
    finite = np.isfinite(error)
    return {"epe_px": float(error[finite].mean()) if finite.any() else float("nan"),
            "bad3_percent": float(100.0 * np.mean(error > 3.0)),
            "density_percent": float(100.0 * finite.mean())}


def run_offline_demo(out_dir: str | os.PathLike, models: list[str], device: str = "auto",
                     weights: dict[str, str | None] | None = None) -> dict[str, Any]:
    left, right, truth = motorcycle_pair()
    report: dict[str, Any] = {"pair": "Middlebury 2014 motorcycle (scikit-image, 741x500)",
                              "max_disparity": MOTORCYCLE_MAX_DISPARITY, "results": {}}
    for model in models:
        estimator = StereoEstimator(model, (weights or {}).get(model), MOTORCYCLE_MAX_DISPARITY,
                                    device)
        result = estimator.estimate(left, right)
        write_result(Path(out_dir) / model, left, result, MOTORCYCLE_MAX_DISPARITY,
                     MOTORCYCLE_CAMERA)
        report["results"][model] = {**disparity_errors(result.disparity, truth),
                                    "latency_ms": result.timings_ms["total"],
                                    "weights": (weights or {}).get(model) or
                                    ("none" if model == "sgbm" else "untrained initial weights")}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
