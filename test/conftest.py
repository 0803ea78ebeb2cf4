"""Shared fixtures. DDS stays on loopback for every process a test starts (README, "DDS on one
machine")."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_depth_node.data.pfm import read_pfm, write_pfm
from stereo_depth_node.ros.node_process import SHM_PROFILE, profile_variable

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(0, 101)))
# Shared memory only, with segments large enough for whole images (see README, "DDS"), under
# the name this Fast DDS reads.
os.environ.setdefault(profile_variable(), str(SHM_PROFILE))

REPO_ROOT = Path(__file__).resolve().parents[1]
STEREO_EVAL = REPO_ROOT.parent / "shared" / "data" / "stereo_eval"


@pytest.fixture(scope="session")
def stereo_eval() -> Path:
    if not STEREO_EVAL.is_dir():
        pytest.fail(f"evaluation data missing: {STEREO_EVAL} (the project's ../shared checkout)")
    return STEREO_EVAL


# 160x96 windows with true disparities in each dataset and occluded pixels in every Middlebury
# scene (tsukuba's has 969).
SMALL_WINDOWS = {"middlebury2003": (slice(96, 192), slice(112, 272)),
                 "eth3d": (slice(200, 296), slice(400, 560)),
                 "kitti2015": (slice(200, 296), slice(500, 660))}


def _crop_tree(source: Path, target: Path, window: tuple[slice, slice]) -> None:
    """`source`'s files under `target`, every image, mask and disparity map cut to `window`."""
    for path in source.rglob("*"):
        copy = target / path.relative_to(source)
        if path.is_dir():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".png":
            cv2.imwrite(str(copy), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[window])
        elif path.suffix == ".pfm":
            write_pfm(copy, read_pfm(path)[window])
        else:
            shutil.copy(path, copy)


@pytest.fixture(scope="session")
def small_stereo_eval(tmp_path_factory, stereo_eval) -> Path:
    """stereo_eval with every pair cut to 160x96: real images and truth in the same layouts, which
    a CPU matches in a fraction of the whole pairs' time."""
    root = tmp_path_factory.mktemp("small_stereo_eval")
    for dataset, window in SMALL_WINDOWS.items():
        _crop_tree(stereo_eval / dataset, root / dataset, window)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def ros_context():
    """rclpy in this test process (same random domain as the node processes it starts)."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()
