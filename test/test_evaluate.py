"""Evaluation: the command's output, and the shipped weights reproducing their model cards."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stereo_depth_node.checkpoints import SHIPPED_DIR, read_checkpoint
from stereo_depth_node.evaluate import Method, evaluate

SHIPPED = ("psmnet_dws", "psmnet")


def test_eval_command_writes_json_and_markdown(tmp_path):
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "eval", "--methods",
                           "sgbm", "psmnet_dws:none", "--no-real", "--synthetic", "1",
                           "--device", "cpu", "--json", str(tmp_path / "e.json"), "--markdown",
                           str(tmp_path / "e.md")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["methods"]) == {"sgbm", "psmnet_dws (initial weights)"}
    sgbm = result["methods"]["sgbm"]["datasets"]["synthetic"]
    assert sgbm["images"] == 1 and 0 < sgbm["all"]["density"] < 100  # SGBM leaves holes
    assert sgbm["occ"]["bad3"] > sgbm["noc"]["bad3"]
    assert "| synthetic (1) | sgbm |" in (tmp_path / "e.md").read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_fit_the_package(name):
    path = SHIPPED_DIR / f"{name}.pt"
    assert path.stat().st_size < 20 * 2**20
    checkpoint = read_checkpoint(path)
    assert checkpoint["model"] == name and checkpoint["max_disparity"] == 64
    card = json.loads((SHIPPED_DIR / f"{name}.json").read_text())
    assert card["model"] == name and card["steps"] > 0 and card["samples_seen"] > 0
    assert card["recipe"]["loss"].startswith("smooth L1")


def test_shipped_weights_reproduce_their_cards(stereo_eval):
    result = evaluate([Method("sgbm"), *(Method(name) for name in SHIPPED)], stereo_eval, 8,
                      device="cpu", progress=lambda _: None)
    for name in SHIPPED:
        card = json.loads((SHIPPED_DIR / f"{name}.json").read_text())["evaluation"]
        assert card["scored_below_disparity"] == result["scored_below_disparity"]
        for label, datasets in card["datasets"].items():
            measured = result["methods"][label]["datasets"]
            for dataset, regions in datasets.items():
                for region in ("all", "noc", "occ"):
                    for key, expected in regions[region].items():
                        actual = measured[dataset][region][key]
                        if expected is None:
                            assert actual is None
                        else:  # other CPUs may round a few pixels differently
                            assert actual == pytest.approx(expected, abs=0.05), \
                                (label, dataset, region, key)
