"""Model cards add up the training behind the weights across runs; fine-tuning warms its rate up
and can keep BatchNorm frozen."""
from __future__ import annotations

import json

import pytest
import torch

from stereo_depth_node.model_card import ship
from stereo_depth_node.train import learning_rate, train
from stereo_depth_node.training_history import card_history, history_of_weights, run_entry
from test_train import tiny_config


def quiet(_: str) -> None:
    pass


def test_card_adds_up_runs_chained_through_shipped_weights(tmp_path):
    shipped = tmp_path / "weights"
    first = train(tiny_config(tmp_path / "first", steps=2), progress=quiet)
    ship(first["checkpoint"], "net", None, shipped)
    card = json.loads((shipped / "net.json").read_text())
    assert (card["steps"], card["samples_seen"], len(card["history"])) == (2, 4, 1)

    # The second run starts from the shipped weights, stops, and is resumed to its end.
    second = tiny_config(tmp_path / "second", steps=2, init_weights=str(shipped / "net.pt"),
                         lr_warmup_steps=10)
    train(second, progress=quiet)
    second.steps = 3
    resumed = train(second, resume=tmp_path / "second/last.pt", progress=quiet)
    ship(resumed["checkpoint"], "net", None, shipped)

    card = json.loads((shipped / "net.json").read_text())
    runs = card["history"]
    assert [(run["steps"], run["samples_seen"]) for run in runs] == [(2, 4), (3, 6)]
    assert (card["steps"], card["samples_seen"]) == (5, 10)
    assert card["wall_time_s"] == pytest.approx(runs[0]["wall_time_s"] + runs[1]["wall_time_s"],
                                                abs=0.11)
    assert [run["lr_warmup_steps"] for run in runs] == [0, 10]
    assert card["trained_on"] == "cpu" and card["recipe"]["init_weights"].endswith("net.pt")
    assert card_history(card) == runs


def test_a_card_that_describes_other_bytes_gives_no_history(tmp_path):
    run = train(tiny_config(tmp_path / "run", steps=1), progress=quiet)
    weights, _ = ship(run["checkpoint"], "net", None, tmp_path / "weights")
    assert len(history_of_weights(weights)) == 1
    weights.write_bytes(weights.read_bytes() + b"\0")  # replaced behind the card's back
    assert history_of_weights(weights) == []
    assert history_of_weights(tmp_path / "no_card_here.pt") == []


def test_a_card_from_before_histories_counts_as_one_run():
    card = {"model": "psmnet_dws", "steps": 1000, "samples_seen": 4000, "wall_time_s": 4817.0,
            "trained_on": "cpu", "recipe": {"lr": 0.001, "batch_size": 4, "seed": 0}}
    assert card_history(card) == [{"steps": 1000, "samples_seen": 4000, "wall_time_s": 4817.0,
                                   "trained_on": "cpu", "model": "psmnet_dws", "lr": 0.001,
                                   "batch_size": 4}]


def test_a_run_on_a_gpu_names_the_gpu():
    meta = {"step": 767, "samples_seen": 6136, "wall_time_s": 300.3, "gpu": "NVIDIA H200",
            "config": {"device": "cuda", "model": "psmnet_dws", "lr": 0.001}}
    entry = run_entry(meta)
    assert entry["trained_on"] == "cuda (NVIDIA H200)" and entry["steps"] == 767
    assert run_entry({**meta, "gpu": None, "config": {"device": "cpu"}})["trained_on"] == "cpu"


def test_loss_plot_draws_the_logged_losses(tmp_path):
    import cv2
    import numpy as np

    from stereo_depth_node.errors import ConfigurationError
    from stereo_depth_node.model_card import write_loss_plot

    log = tmp_path / "log.jsonl"
    # Falling losses, and a validation line without a loss that the plot must skip.
    log.write_text("".join(json.dumps({"step": s, "loss": 40.0 - s / 10}) + "\n"
                           for s in range(10, 210, 10)) + '{"step": 200, "val_epe": 3.0}\n')
    write_loss_plot(log, tmp_path / "loss.png", "run: training loss")
    image = cv2.imread(str(tmp_path / "loss.png"))
    assert image.shape == (360, 640, 3)
    drawn = np.argwhere((image[..., 0] > 120) & (image[..., 2] < 60))  # the curve's blue
    first, last = drawn[drawn[:, 1].argmin()], drawn[drawn[:, 1].argmax()]
    assert first[0] < last[0]  # left end high, right end low: a falling loss
    log.write_text(json.dumps({"step": 1, "loss": 3.0}) + "\n")
    with pytest.raises(ConfigurationError, match="has 1 logged losses; a curve needs 2"):
        write_loss_plot(log, tmp_path / "one.png", "one")


def test_warm_up_ramps_the_rate_the_optimiser_uses(tmp_path):
    config = tiny_config(tmp_path, steps=2, lr=0.004, lr_warmup_steps=4)
    assert [learning_rate(config, step) for step in range(6)] == \
        [0.001, 0.002, 0.003, 0.004, 0.004, 0.004]
    assert learning_rate(tiny_config(tmp_path, lr=0.004), 0) == 0.004  # no warm-up: constant
    train(config, progress=quiet)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.002  # the rate of the 2nd update


@pytest.mark.parametrize("frozen", [False, True])
def test_frozen_batch_norm_keeps_its_statistics_while_weights_learn(tmp_path, frozen):
    first = train(tiny_config(tmp_path / "start", steps=1), progress=quiet)
    start = torch.load(first["checkpoint"], weights_only=True)["state_dict"]
    run = tiny_config(tmp_path / "tuned", steps=2, init_weights=first["checkpoint"],
                      freeze_batch_norm=frozen, validate_every=1)  # validation between steps
    tuned = torch.load(train(run, progress=quiet)["checkpoint"], weights_only=True)["state_dict"]
    statistics = [k for k in start if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in start if k.endswith("weight")]
    assert statistics and weights
    unchanged = [torch.equal(start[k], tuned[k]) for k in statistics]
    assert all(unchanged) if frozen else not any(unchanged)
    assert not any(torch.equal(start[k], tuned[k]) for k in weights)  # BN scales too
