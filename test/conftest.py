"""Shared fixtures. DDS stays on loopback for every process a test starts (README, "DDS on one
machine")."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(0, 101)))
# Shared memory only, with segments large enough for whole images (see README, "DDS").
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(
    Path(__file__).resolve().parents[1] / "stereo_depth_node" / "ros" / "fastdds_shm.xml"))

REPO_ROOT = Path(__file__).resolve().parents[1]
STEREO_EVAL = REPO_ROOT.parent / "shared" / "data" / "stereo_eval"


@pytest.fixture(scope="session")
def stereo_eval() -> Path:
    if not STEREO_EVAL.is_dir():
        pytest.fail(f"evaluation data missing: {STEREO_EVAL} (the project's ../shared checkout)")
    return STEREO_EVAL


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
