"""Training: the loss falls on a fixed batch, resume is bit-exact, bad resumes are refused."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from stereo_depth_node.checkpoints import load_model
from stereo_depth_node.data.datasets import kitti2015
from stereo_depth_node.data.datasets import stereo_eval as stereo_eval_samples
from stereo_depth_node.errors import ConfigurationError
from stereo_depth_node.models import build_model
from stereo_depth_node.train import (TrainConfig, dataset_batches, place_for_training,
                                     sequence_loss, stereo_eval_epe, synthetic_batches, train,
                                     training_step, training_tools, valid_mask)


REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(model="psmnet_dws", max_disparity=16, crop_height=32, crop_width=64,
                  batch_size=2, steps=4, device="cpu", precision="fp32", validate_every=0,
                  checkpoint_every=2, log_every=1, out_dir=str(tmp_path), min_layers=2,
                  max_layers=4)
    values.update(overrides)
    return TrainConfig(**values)


def test_loss_falls_on_a_fixed_batch(tmp_path):
    config = tiny_config(tmp_path, steps=12, lr=1e-3)
    from stereo_depth_node.train import synthetic_batches
    fixed = synthetic_batches(config, torch.device("cpu"), rank=0)(0)
    lines = []
    train(config, batches=lambda step: fixed, progress=lines.append)
    losses = [float(loss) for line in lines for loss in re.findall(r"\bloss (\S+)", line)]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_resume_continues_bit_exactly(tmp_path):
    straight = train(tiny_config(tmp_path / "straight"), progress=lambda _: None)
    train(tiny_config(tmp_path / "split", steps=2), progress=lambda _: None)
    resumed = train(tiny_config(tmp_path / "split", steps=4),
                    resume=tmp_path / "split" / "last.pt", progress=lambda _: None)
    assert straight["step"] == resumed["step"] == 4
    assert straight["samples_seen"] == resumed["samples_seen"] == 8
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/last.pt", weights_only=True)
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])


def test_a_resumed_run_keeps_its_own_seed_and_start(tmp_path):
    # make train-cpu resumes with the YAML file's settings (seed 0, no init_weights) a run that
    # began from shipped weights on a seed of its own; it must go on with that run's scenes.
    from stereo_depth_node.checkpoints import save_checkpoint
    train(tiny_config(tmp_path / "base", steps=1), progress=lambda _: None)
    start = tmp_path / "start.pt"
    save_checkpoint(start, load_model(tmp_path / "base/last.pt", "psmnet_dws", 16), "psmnet_dws")
    own = dict(seed=20261206, init_weights=str(start))
    train(tiny_config(tmp_path / "straight", **own), progress=lambda _: None)
    train(tiny_config(tmp_path / "split", steps=2, **own), progress=lambda _: None)
    start.unlink()  # a resume starts from its checkpoint and never reads these again
    lines: list[str] = []
    train(tiny_config(tmp_path / "split"), resume=tmp_path / "split/last.pt",
          progress=lines.append)
    assert lines[0] == (f"resuming keeps the run's seed 20261206 (the settings say 0), "
                        f"init_weights {str(start)!r} (the settings say None)")
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/last.pt", weights_only=True)
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    assert (b["config"]["seed"], b["config"]["init_weights"]) == (20261206, str(start))
    assert yaml.safe_load((tmp_path / "split/config.yaml").read_text())["seed"] == 20261206
    refused = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "train", "--resume",
                              str(tmp_path / "split/last.pt"), "--seed", "7", "--out-dir",
                              str(tmp_path / "split")], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2
    assert ("--resume continues a run on its own seed and from its own start; --seed and "
            "--init-weights begin a new run") in refused.stderr


def test_the_weight_order_changes_the_speed_and_not_the_gradients(tmp_path):
    # auto trains the CPU's weights channels-last (1.10-1.14x a step there). Adam turns the
    # rounding of tiny gradients into whole steps of lr, so two orders' runs drift apart as two
    # thread counts' do; what must hold is each step's loss and gradients. Some of these
    # gradients cancel heavily (fp32 gets them to about 1e-3 of their largest element in either
    # order), so both orders are held to a float64 run.
    config = tiny_config(tmp_path)
    cpu = torch.device("cpu")
    batch = synthetic_batches(config, cpu, rank=0)(0)
    autocast, scaler = training_tools(cpu, "fp32")

    def one_step(order: str, dtype: torch.dtype) -> tuple[str, float, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        model = build_model(config.model, config.max_disparity).to(dtype)
        placed = place_for_training(model, dataclasses.replace(config, memory_format=order), cpu)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        typed = dataclasses.replace(batch, left=batch.left.to(dtype),
                                    right=batch.right.to(dtype),
                                    disparity=batch.disparity.to(dtype))
        loss = training_step(model, typed, optimizer, scaler, autocast, config.max_disparity)
        return placed, loss.item(), {name: p.grad.double() for name, p in
                                     model.named_parameters()}

    _, exact_loss, exact = one_step("contiguous", torch.float64)
    for order, expected in (("contiguous", "contiguous"), ("auto", "channels_last")):
        placed, loss, gradients = one_step(order, torch.float32)
        assert placed == expected
        assert loss == pytest.approx(exact_loss, rel=1e-6)
        for name, gradient in exact.items():
            error = (gradients[name] - gradient).abs().max() / gradient.abs().max()
            assert error < 3e-3, (order, name, float(error))
    with pytest.raises(ConfigurationError,
                       match="memory_format 'nhwc' is not one of auto, contiguous, channels_last"):
        tiny_config(tmp_path, memory_format="nhwc")


def test_a_run_begun_in_torchs_order_resumes_channels_last(tmp_path):
    # Every run before memory_format was in torch's order; make train-cpu resumes them with auto.
    train(tiny_config(tmp_path, steps=2, memory_format="contiguous"), progress=lambda _: None)
    before = torch.load(tmp_path / "last.pt", weights_only=True)
    train(tiny_config(tmp_path), resume=tmp_path / "last.pt", progress=lambda _: None)
    after = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (before["step"], after["step"]) == (2, 4)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 4 and all(np.isfinite(losses))
    kernels = {name: value for name, value in after["state_dict"].items() if value.dim() == 4}
    assert kernels and all(value.is_contiguous(memory_format=torch.channels_last)
                           for value in kernels.values())
    assert not all(value.is_contiguous(memory_format=torch.channels_last)
                   for name, value in before["state_dict"].items() if name in kernels)


def test_step_copies_are_the_state_at_their_step(tmp_path):
    # The copies a shipped average is taken over: each one the run as it was at that step,
    # whatever the periodic checkpoints do in between.
    train(tiny_config(tmp_path / "kept", keep_every=2, checkpoint_every=3),
          progress=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "kept/steps").iterdir()) == ["step_2.pt",
                                                                           "step_4.pt"]
    train(tiny_config(tmp_path / "short", steps=2), progress=lambda _: None)
    copy = torch.load(tmp_path / "kept/steps/step_2.pt", weights_only=True)
    at_two = torch.load(tmp_path / "short/last.pt", weights_only=True)
    assert copy["step"] == 2 and copy["samples_seen"] == 4
    for name, value in at_two["state_dict"].items():
        assert torch.equal(value, copy["state_dict"][name]), name
    with pytest.raises(ConfigurationError, match="keep_every must be >= 0"):
        tiny_config(tmp_path, keep_every=-100)


def test_resume_with_rich_scenes_and_augmentation_is_bit_exact(tmp_path):
    rich = dict(rich_scenes=True, augment=True)
    train(tiny_config(tmp_path / "straight", **rich), progress=lambda _: None)
    train(tiny_config(tmp_path / "split", steps=2, **rich), progress=lambda _: None)
    train(tiny_config(tmp_path / "split", **rich), resume=tmp_path / "split" / "last.pt",
          progress=lambda _: None)
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/last.pt", weights_only=True)
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    plain = train(tiny_config(tmp_path / "plain", steps=1), progress=lambda _: None)
    richer = train(tiny_config(tmp_path / "rich", steps=1, **rich), progress=lambda _: None)
    first = torch.load(plain["checkpoint"], weights_only=True)["state_dict"]
    other = torch.load(richer["checkpoint"], weights_only=True)["state_dict"]
    assert any(not torch.equal(first[name], other[name]) for name in first)  # other data


def test_batches_made_ahead_train_the_same_weights_as_batches_made_in_turn(tmp_path):
    rich = dict(rich_scenes=True, augment=True, ground_share=0.3)
    ahead = train(tiny_config(tmp_path / "ahead", batches_ahead=True, **rich),
                  progress=lambda _: None)
    in_turn = train(tiny_config(tmp_path / "in_turn", batches_ahead=False, **rich),
                    progress=lambda _: None)
    assert ahead["step"] == in_turn["step"] == 4
    assert ahead["batches_ahead"] and not in_turn["batches_ahead"]
    a = torch.load(tmp_path / "ahead/last.pt", weights_only=True)
    b = torch.load(tmp_path / "in_turn/last.pt", weights_only=True)
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name


def test_batches_are_made_in_turn_when_the_step_takes_every_core(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        lines = []
        result = train(tiny_config(tmp_path, steps=1), progress=lines.append)  # auto
        assert not result["batches_ahead"]
        assert (f"batches are made between steps: {torch.get_num_threads()} torch threads leave "
                f"no cores for a worker making them ahead (batches_ahead: auto)") in lines
    finally:
        torch.set_num_threads(before)


def test_batches_ahead_is_true_false_or_auto(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("batches_ahead: sometimes\n")
    with pytest.raises(ConfigurationError, match="batches_ahead must be true, false or auto, "
                                                 "got 'sometimes'"):
        TrainConfig.from_yaml(config)
    with pytest.raises(ConfigurationError, match="batches_ahead must be true, false or auto, "
                                                 "not 1"):
        TrainConfig(batches_ahead=1)


def test_fine_tuning_trains_on_crops_of_the_dataset_pairs(tmp_path, stereo_eval):
    frame = stereo_eval / "kitti2015" / "000000_10"
    config = tiny_config(tmp_path, dataset=f"kitti2015:{frame}", steps=2, crop_height=64,
                         crop_width=128)
    batch = dataset_batches(config, torch.device("cpu"), rank=0)(0)
    [sample] = kitti2015(frame)
    full_left = sample.left.astype(np.float32) / 255
    for left, disparity in zip(batch.left, batch.disparity):
        # Where the crop lies in the frame: the disparity crop must come from the same place.
        crop = np.ascontiguousarray(left.permute(1, 2, 0).numpy())
        scores = cv2.matchTemplate(full_left, crop, cv2.TM_SQDIFF)
        least, _, (x, y), _ = cv2.minMaxLoc(scores)
        assert least < 1e-2  # a sum of squares over 24,576 values: float rounding only
        np.testing.assert_array_equal(disparity.numpy(), sample.disparity[y:y + 64, x:x + 128])
    summary = train(config, progress=lambda _: None)
    assert summary["step"] == 2 and summary["samples_seen"] == 4


def test_fine_tuning_with_a_crop_larger_than_the_pairs_is_refused(tmp_path, stereo_eval):
    frame = stereo_eval / "kitti2015" / "000000_10"
    config = tiny_config(tmp_path, dataset=f"kitti2015:{frame}", crop_height=400, crop_width=128)
    with pytest.raises(ConfigurationError, match=r"kitti2015/000000_10 is 1242x375 px, smaller "
                                                 r"than the 128x400 crop"):
        train(config, progress=lambda _: None)


def test_resume_from_another_model_or_range_is_refused(tmp_path):
    train(tiny_config(tmp_path, steps=1), progress=lambda _: None)
    with pytest.raises(ConfigurationError, match="cannot resume 'psmnet' from .*'psmnet_dws'"):
        train(tiny_config(tmp_path / "other", model="psmnet"), resume=tmp_path / "last.pt")
    with pytest.raises(ConfigurationError, match="max_disparity 32 .*trained with 16"):
        train(tiny_config(tmp_path / "other", max_disparity=32), resume=tmp_path / "last.pt")


def test_disparity_above_the_max_is_not_supervised():
    target = torch.tensor([[[5.0, 15.0, 16.0, 40.0, float("nan")]]])
    valid = valid_mask(target, 16)
    assert valid.tolist() == [[[True, True, False, False, False]]]
    prediction = torch.tensor([[[5.0, 15.0, 0.0, 0.0, 0.0]]])
    assert sequence_loss((prediction,) * 3, target, valid).item() == 0.0


def test_train_command_writes_checkpoint_log_and_config(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("max_disparity: 16\ncrop_height: 32\ncrop_width: 64\nbatch_size: 2\n"
                      "validate_every: 0\nlog_every: 1\nmin_layers: 2\nmax_layers: 4\n"
                      "precision: fp32\n")
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "train", "--config",
                           str(config), "--steps", "2", "--device", "cpu", "--out-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trained psmnet_dws to step 2 (4 samples" in done.stdout
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]
    assert all(entry["samples_per_s"] > 0 and "excluded_above_max" in entry for entry in log)
    assert all(0 < entry["data_share"] < 1 for entry in log)
    model = load_model(tmp_path / "run/last.pt", "psmnet_dws", 16)  # loads as shipped weights
    assert model.max_disparity == 16
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    bad = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "train", "--config",
                          str(tmp_path / "bad.yaml")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown training settings" in bad.stderr


@pytest.mark.parametrize("text, message", [
    ("lr: fast", "lr must be a number, got 'fast'"),  # was a TypeError from the first step
    ("lr: yes", "lr must be a number, got True"),
    ("steps: 1.5", "steps must be a whole number, got 1.5"),
    ("augment: 'yes'", "augment must be true or false, got 'yes'"),
    ("betas: [0.9]", "betas must be a list of two numbers, got [0.9]"),
    ("dataset: 2015", "dataset must be a string or null, got 2015"),
    ("[1, 2]", "must hold training settings as 'name: value' lines, not a list"),
])
def test_a_setting_of_the_wrong_kind_is_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigurationError, match=re.escape(f"{str(path)!r}") + ".*" +
                       re.escape(message)):
        TrainConfig.from_yaml(path)


def test_every_setting_of_the_shipped_configs_and_the_defaults_passes_the_check(tmp_path):
    for config in sorted((REPO_ROOT / "config").glob("train_*.yaml")):
        TrainConfig.from_yaml(config)
    defaults = dataclasses.asdict(TrainConfig())
    (tmp_path / "defaults.yaml").write_text(yaml.safe_dump(
        {**defaults, "betas": list(defaults["betas"])}))
    assert TrainConfig.from_yaml(tmp_path / "defaults.yaml") == TrainConfig()


def test_periodic_validation_on_synthetic_and_real_pairs(tmp_path, small_stereo_eval):
    lines = []
    train(tiny_config(tmp_path, steps=1, validate_every=1, validation_batches=1,
                      eval_root=str(small_stereo_eval)), progress=lines.append)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    scores = next(entry for entry in log if "val_synthetic_epe" in entry)
    for name in ("synthetic", "middlebury2003", "kitti2015", "eth3d"):
        assert 0 < scores[f"val_{name}_epe"] < 100, name
    assert any(line.startswith("step 1: validation EPE (px) synthetic") for line in lines)


def test_validation_leaves_out_pairs_whose_truth_lies_beyond_the_trained_range(small_stereo_eval):
    # At max disparity 16, cones's 160x96 window has no true disparity below 16: it was a
    # KeyError mid-training. Tsukuba's (up to 14 px) is scored; cones alone scores nothing.
    model = load_model(None, "psmnet_dws", 16)
    samples = {s.name: s for s in stereo_eval_samples(small_stereo_eval)}
    cones, tsukuba = samples["middlebury2003/cones"], samples["middlebury2003/tsukuba"]
    assert np.nanmin(cones.disparity) >= 16 > np.nanmax(tsukuba.disparity)
    device = torch.device("cpu")
    assert stereo_eval_epe(model, [cones], device) == {}
    with_cones = stereo_eval_epe(model, [cones, tsukuba], device)
    assert with_cones == stereo_eval_epe(model, [tsukuba], device)
    assert 0 < with_cones["val_middlebury2003_epe"] < 16


def test_resume_from_shipped_weights_is_refused(tmp_path):
    train(tiny_config(tmp_path, steps=1), progress=lambda _: None)
    from stereo_depth_node.checkpoints import save_checkpoint
    save_checkpoint(tmp_path / "weights.pt", load_model(tmp_path / "last.pt", "psmnet_dws", 16),
                    "psmnet_dws")
    with pytest.raises(ConfigurationError, match="holds weights only, not a training state"):
        train(tiny_config(tmp_path / "again"), resume=tmp_path / "weights.pt")


def test_ground_planes_are_refused_without_rich_scenes(tmp_path):
    with pytest.raises(ConfigurationError, match="ground_share needs rich_scenes: true"):
        tiny_config(tmp_path, ground_share=0.3)
    with pytest.raises(ConfigurationError, match=r"ground_share must lie in \[0, 1\], not 1.5"):
        tiny_config(tmp_path, rich_scenes=True, ground_share=1.5)
    (tmp_path / "ground.yaml").write_text("ground_share: 0.3\n")
    refused = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "train", "--config",
                              str(tmp_path / "ground.yaml")], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "ground_share needs rich_scenes" in refused.stderr
    # With rich scenes the same share trains, and the run records it.
    config = tiny_config(tmp_path / "run", steps=1, rich_scenes=True, ground_share=0.3)
    train(config, progress=lambda line: None)
    state = torch.load(tmp_path / "run/last.pt", map_location="cpu", weights_only=True)
    assert state["config"]["ground_share"] == 0.3


def test_small_range_share_is_checked_and_recorded(tmp_path):
    with pytest.raises(ConfigurationError,
                       match=r"small_range_share must lie in \[0, 1\], not -0.1"):
        tiny_config(tmp_path, small_range_share=-0.1)
    config = tiny_config(tmp_path / "run", steps=1, small_range_share=0.3)
    train(config, progress=lambda line: None)
    state = torch.load(tmp_path / "run/last.pt", map_location="cpu", weights_only=True)
    assert state["config"]["small_range_share"] == 0.3


def test_a_new_run_is_refused_in_a_runs_folder_which_resume_continues(tmp_path):
    # It overwrote the run's last.pt, appended to its log and mixed the two runs' step copies.
    train(tiny_config(tmp_path, steps=1), progress=lambda _: None)
    log = (tmp_path / "log.jsonl").read_text()
    state = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ConfigurationError, match=(
            f"'{tmp_path}' holds a run \\(last.pt\\): --resume {tmp_path}/last.pt continues it; "
            f"give another --out-dir for a new one")):
        train(tiny_config(tmp_path, steps=2), progress=lambda _: None)
    assert (tmp_path / "log.jsonl").read_text() == log
    assert (tmp_path / "last.pt").read_bytes() == state
    summary = train(tiny_config(tmp_path, steps=2), resume=tmp_path / "last.pt",
                    progress=lambda _: None)
    assert summary["step"] == 2


def test_resuming_with_other_settings_says_which_it_takes(tmp_path):
    train(tiny_config(tmp_path, steps=1), progress=lambda _: None)
    lines = []
    train(tiny_config(tmp_path, steps=2, lr=5e-4, crop_width=128), resume=tmp_path / "last.pt",
          progress=lines.append)
    assert ("resuming with settings that differ from the run's own, which it goes on with from "
            "here: lr 0.001 -> 0.0005, crop_width 64 -> 128") in lines
    lines.clear()
    train(tiny_config(tmp_path, steps=3, lr=5e-4, crop_width=128), resume=tmp_path / "last.pt",
          progress=lines.append)
    assert not any(line.startswith("resuming with settings") for line in lines), lines


@pytest.mark.parametrize("overrides, message", [
    (dict(log_every=0), "log_every must be >= 1, not 0"),  # ZeroDivisionError at step 1
    (dict(checkpoint_every=0), "checkpoint_every must be >= 1, not 0"),
    (dict(steps=-3), "steps must be >= 1, not -3"),  # "trained to step 0" and a step-0 state
    (dict(seed=-1), r"seed must lie in \[0, 2\*\*32\), not -1"),  # numpy's error at the start
    (dict(crop_height=40), "crop_height must be a multiple of 16 of at least 32 px, not 40"),
    (dict(time_budget_s=float("nan")), "time_budget_s must be a number >= 0 \\(0 = off\\), "
                                       "not nan"),  # never stopped
    (dict(lr=0.0), "lr must be above 0, not 0.0"),
    (dict(dataset="kitti2015:/data/kitti", augment=True, rich_scenes=True),
     "rich_scenes, augment shape the synthetic scenes, and training on dataset "
     "'kitti2015:/data/kitti' would ignore them: turn them off"),  # silently ignored
])
def test_settings_that_would_fail_or_be_ignored_later_are_refused_at_once(tmp_path, overrides,
                                                                         message):
    with pytest.raises(ConfigurationError, match=message):
        tiny_config(tmp_path, **overrides)
    assert not any(tmp_path.iterdir())
