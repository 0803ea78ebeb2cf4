"""`stereo-depth bench memory`: each case in its own process, checked against memory the network
must hold by construction."""
from __future__ import annotations

import json

import pytest
import torch

from stereo_depth_node.bench_memory import MIB, bench_memory
from test_cli import run_cli

WIDTH, HEIGHT = 320, 240


def aggregation_floor_mib(max_disparity: int) -> float:
    """The first 3-D layer reads the concatenation volume (64 channels x D/4 levels x H/4 x W/4)
    and writes 32 channels of the same size, both fp32 and alive at once (models/psmnet.py,
    PSMNet._costs): 1.5 x 4 D H W bytes, a floor under any frame's peak."""
    return 1.5 * 4 * max_disparity * HEIGHT * WIDTH / MIB


def test_a_frames_peak_holds_the_first_aggregation_layer():
    result = bench_memory(["psmnet_dws"], [(WIDTH, HEIGHT)], max_disparity=192, device="cpu",
                          frames=2)
    row, = result["rows"]
    assert row["device"] == "cpu" and row["precision"] == "fp32"
    assert len(row["frame_peaks_mib"]) == 2 and row["peak_mib"] == max(row["frame_peaks_mib"])
    assert row["peak_mib"] >= row["loaded_mib"] > 100  # torch alone is more than that
    assert row["frame_mib"] == pytest.approx(row["peak_mib"] - row["loaded_mib"], abs=0.11)
    assert row["frame_mib"] >= aggregation_floor_mib(192)
    assert result["machine"]["cpu_count"] >= 1


def test_a_case_that_fails_is_named_and_the_next_case_still_runs():
    result = bench_memory(["sgbm"], [(20, 20), (64, 48)], max_disparity=16, device="cpu",
                          frames=1)
    failed, measured = result["rows"]
    assert failed["error"] == "left image is 20x20 px; both sides must be at least 32 px"
    assert failed["returncode"] == 2
    assert measured["width"] == 64 and measured["peak_mib"] >= measured["loaded_mib"] > 0


def test_the_command_prints_a_table_and_writes_json(tmp_path):
    done = run_cli("bench", "memory", "--backends", "sgbm", "--sizes", "96x64", "--frames", "1",
                   "--max-disparity", "16", "--device", "cpu", "--json", tmp_path / "m.json",
                   "--markdown", tmp_path / "m.md")
    assert done.returncode == 0, done.stderr
    row, = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert row["backend"] == "sgbm" and (row["width"], row["height"]) == (96, 64)
    line = (f"| sgbm | 96x64 | cpu | uint8 | {row['loaded_mib']:.0f} | {row['peak_mib']:.0f} | "
            f"{row['frame_mib']:.0f} |  |")
    assert line in done.stdout and line in (tmp_path / "m.md").read_text()


def test_frames_must_be_positive(tmp_path):
    done = run_cli("bench", "memory", "--frames", "0", "--json", tmp_path / "m.json")
    assert done.returncode == 2
    assert done.stderr.strip() == "stereo-depth bench: error: --frames must be >= 1, got 0"
    assert not (tmp_path / "m.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_one_error_line(tmp_path):
    done = run_cli("bench", "memory", "--device", "cuda", "--json", tmp_path / "m.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("stereo-depth bench: error: device 'cuda' requested but CUDA "
                                  "is not available")
    assert not (tmp_path / "m.json").exists()
