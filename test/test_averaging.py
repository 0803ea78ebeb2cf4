"""stereo-depth average: the mean of a run's checkpoints, shippable like one checkpoint."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from stereo_depth_node.averaging import average_checkpoints
from stereo_depth_node.checkpoints import load_model, read_checkpoint, save_checkpoint
from stereo_depth_node.errors import ConfigurationError
from stereo_depth_node.model_card import ship
from stereo_depth_node.models import build_model


def checkpoint(path, seed: int, step: int, max_disparity: int = 16):
    torch.manual_seed(seed)
    model = build_model("psmnet_dws", max_disparity)
    for buffer in model.buffers():  # BatchNorm statistics as a trained network has them
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    save_checkpoint(path, model, "psmnet_dws", step=step, samples_seen=4 * step,
                    wall_time_s=10.0 * step, config={"device": "cpu", "lr": 1e-4},
                    optimizer={"state": {}}, rng={"torch": torch.get_rng_state()})
    return model.state_dict()


def test_the_average_is_the_mean_of_the_weights_and_keeps_the_last_record(tmp_path):
    first = checkpoint(tmp_path / "a.pt", seed=1, step=100)
    second = checkpoint(tmp_path / "b.pt", seed=2, step=200)
    third = checkpoint(tmp_path / "c.pt", seed=3, step=300)
    out = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"],
                              tmp_path / "avg.pt")
    averaged = read_checkpoint(out)
    key = "feature_extraction.layer1.0.conv2.0.weight"
    assert torch.allclose(averaged["state_dict"][key],
                          (first[key] + second[key] + third[key]) / 3, atol=1e-6)
    running = next(k for k in first if k.endswith("running_var"))
    assert torch.allclose(averaged["state_dict"][running],
                          (first[running] + second[running] + third[running]) / 3, atol=1e-6)
    meta = averaged["meta"]
    assert (meta["step"], meta["samples_seen"], meta["averaged_steps"]) == (300, 1200,
                                                                           [100, 200, 300])
    assert "optimizer" not in meta and "rng" not in meta  # weights, not a training state
    load_model(out, "psmnet_dws", 16)
    weights, card_path = ship(out, "psmnet_dws", None, tmp_path / "weights")
    card = card_path.read_text()
    assert '"averaged_steps": [\n    100,\n    200,\n    300\n  ]' in card
    assert '"steps": 300' in card


def test_checkpoints_that_do_not_fit_together_are_refused(tmp_path):
    checkpoint(tmp_path / "a.pt", seed=1, step=100)
    checkpoint(tmp_path / "b.pt", seed=2, step=200, max_disparity=32)
    with pytest.raises(ConfigurationError, match="at least two checkpoints"):
        average_checkpoints([tmp_path / "a.pt"], tmp_path / "avg.pt")
    refused = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "average",
                              str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out",
                              str(tmp_path / "avg.pt")], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2
    assert "max disparity 32) with" in refused.stderr and "max disparity 16)" in refused.stderr
    assert not (tmp_path / "avg.pt").exists()
    # The same command with fitting checkpoints then works.
    checkpoint(tmp_path / "c.pt", seed=3, step=300)
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "average",
                           str(tmp_path / "a.pt"), str(tmp_path / "c.pt"), "--out",
                           str(tmp_path / "avg.pt")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "the mean of 2 checkpoints' weights" in done.stdout
