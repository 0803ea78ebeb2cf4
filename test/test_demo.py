"""`stereo-depth demo`: the node in its own process over DDS, every output received, files and a
report with errors against the ground truth."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from ros_harness import ros_environment
from test_cli import _read_ply


def test_demo_with_sgbm(tmp_path):
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "demo", "--models",
                           "sgbm", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=ros_environment())
    assert done.returncode == 0, done.stderr
    assert "| sgbm |" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    result = report["results"]["sgbm"]
    assert result["node_exit_code"] == 0 and result["frames"] == 9
    assert result["rate_hz"] > 0 and result["median_latency_ms"] > 0
    motorcycle = result["motorcycle"]
    # SGBM on the real Middlebury pair: about 1-2 px EPE, most pixels answered.
    assert 0.3 < motorcycle["epe"] < 3.0 and 70 < motorcycle["density"] < 100
    synthetic = result["synthetic_mean"]
    assert synthetic["occ"]["bad3"] > synthetic["noc"]["bad3"]  # occlusions are the hard part
    figures = tmp_path / "sgbm"
    for name in ("motorcycle_disparity.png", "motorcycle_depth.png"):
        assert (figures / name).stat().st_size > 10_000
    _, vertices = _read_ply(figures / "motorcycle_cloud.ply")
    assert len(vertices) > 0.5 * 741 * 500
    assert 1.0 < np.median(vertices["z"]) < 5.0  # the motorcycle stands a few metres away
    assert (tmp_path / "report.md").read_text().count("| sgbm |") == 1
