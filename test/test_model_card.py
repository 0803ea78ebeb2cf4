"""Model cards add up the training behind the weights across runs; a ship checks every input
before it writes, and writes weights and card together or not at all; fine-tuning warms its rate
up and can keep BatchNorm frozen."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from stereo_depth_node.cli import main
from stereo_depth_node.evaluate import file_sha256
from stereo_depth_node.model_card import ship
from stereo_depth_node.train import learning_rate, train
from stereo_depth_node.training_history import card_history, history_of_weights, run_entry
from test_train import tiny_config


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A two-step training run's last.pt, its log.jsonl beside it."""
    run = train(tiny_config(tmp_path_factory.mktemp("run"), steps=2), progress=quiet)
    return Path(run["checkpoint"])


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


def test_loss_plot_draws_the_logged_losses(checkpoint, tmp_path):
    import cv2
    import numpy as np

    log = tmp_path / "log.jsonl"
    # Falling losses, and a validation line without a loss that the plot must skip.
    log.write_text("".join(json.dumps({"step": s, "loss": 40.0 - s / 10}) + "\n"
                           for s in range(10, 210, 10)) + '{"step": 200, "val_epe": 3.0}\n')
    ship(checkpoint, "net", None, tmp_path / "weights", log, loss_plot=tmp_path / "loss.png")
    image = cv2.imread(str(tmp_path / "loss.png"))
    assert image.shape == (360, 640, 3)
    drawn = np.argwhere((image[..., 0] > 120) & (image[..., 2] < 60))  # the curve's blue
    first, last = drawn[drawn[:, 1].argmin()], drawn[drawn[:, 1].argmax()]
    assert first[0] < last[0]  # left end high, right end low: a falling loss


def _evaluation(path: Path, scored: dict[str, str | None]) -> Path:
    """A `stereo-depth eval` result, reduced to what a card reads, with these labels and sha256s."""
    methods = {label: {"weights_sha256": sha256, "datasets": {"synthetic": {"epe": 1.0}},
                       "real_pair_means": None} for label, sha256 in scored.items()}
    path.write_text(json.dumps({"command": "stereo-depth eval", "methods": methods}))
    return path


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`, hidden ones (a staging folder left over) too."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _ship_cli(capsys, *args: str | Path) -> tuple[int, str]:
    code = main(["ship", *map(str, args)])
    return code, capsys.readouterr().err


@pytest.fixture
def inputs(tmp_path, checkpoint):
    """A weights folder that already holds net.pt and net.json, and the files a ship reads."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "net.pt").write_bytes(b"the weights shipped before")
    (weights / "net.json").write_text('{"name": "net", "file": "net.pt"}\n')
    (tmp_path / "garbled").write_text("{not json\n")
    (tmp_path / "one_loss.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    _evaluation(tmp_path / "sgbm_only.json",
                {"sgbm": None, "sgbm+fill": None, "psmnet_dws:runs/a/last.pt": "0" * 64})
    return {"tmp": tmp_path, "weights": weights, "checkpoint": checkpoint,
            "log": checkpoint.parent / "log.jsonl"}


@pytest.mark.parametrize("args, message", [
    (("{checkpoint}", "--name", "net", "--loss-plot", "{tmp}/loss.png"),
     "--loss-plot draws the run in --loss-curve; give both"),
    (("{checkpoint}", "--name", "net", "--evaluation", "{tmp}/nofile.json"),
     "evaluation '{tmp}/nofile.json' cannot be read (No such file or directory)"),
    (("{checkpoint}", "--name", "net", "--evaluation", "{tmp}/garbled"),
     "evaluation '{tmp}/garbled' is not JSON (Expecting property name"),
    (("{checkpoint}", "--name", "net", "--evaluation", "{weights}/net.json"),  # a card, not one
     "evaluation '{weights}/net.json' is not the JSON of stereo-depth eval"),
    (("{checkpoint}", "--name", "net", "--evaluation", "{tmp}/sgbm_only.json"),
     "it holds sgbm, sgbm+fill, psmnet_dws:runs/a/last.pt. Ship without --evaluation, then "
     "score net.pt"),
    (("{checkpoint}", "--name", "net", "--loss-curve", "{tmp}/nofile.jsonl"),
     "loss curve '{tmp}/nofile.jsonl' cannot be read (No such file or directory)"),
    (("{checkpoint}", "--name", "net", "--loss-curve", "{tmp}"),
     "loss curve '{tmp}' cannot be read (Is a directory)"),
    (("{checkpoint}", "--name", "net", "--loss-curve", "{tmp}/garbled"),
     "line 1 of loss curve '{tmp}/garbled' is not JSON"),
    (("{checkpoint}", "--name", "net", "--loss-curve", "{tmp}/one_loss.jsonl", "--loss-plot",
      "{tmp}/loss.png"), "'{tmp}/one_loss.jsonl' has 1 logged losses; a curve needs 2"),
    (("{checkpoint}", "--name", "net", "--loss-curve", "{log}", "--loss-plot", "{tmp}/loss.txt"),
     "cannot write the loss plot '{tmp}/loss.txt': give a .png"),
    (("{checkpoint}", "--name", "../evil"), "--name '../evil' must be a plain file name"),
    (("{checkpoint}", "--name", ".net"), "--name '.net' must be a plain file name"),
    (("{checkpoint}", "--name", ""), "--name '' must be a plain file name"),
    (("{tmp}/nofile.pt", "--name", "net"), "weights file '{tmp}/nofile.pt' does not exist"),
    (("{tmp}/garbled", "--name", "net"), "'{tmp}/garbled' is not a readable PyTorch checkpoint"),
    # psmnet.pt is what the node loads for psmnet: these psmnet_dws weights were refused there.
    (("{checkpoint}", "--name", "psmnet"), "--name 'psmnet' is the weights file of the 'psmnet' "
     "network, but '{checkpoint}' holds a 'psmnet_dws' network: give --name psmnet_dws or a name "
     "that is no network's"),
])
def test_a_bad_ship_changes_nothing_and_a_good_one_then_works(inputs, capsys, args, message):
    # Weights were written before the evaluation was read and --loss-plot was checked after the
    # card, so a bad input left new weights beside the old card.
    before = _tree(inputs["tmp"])
    code, err = _ship_cli(capsys, *(a.format(**inputs) for a in args),
                          "--out-dir", inputs["weights"])
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("stereo-depth ship: error: ")
    assert message.format(**inputs) in line
    assert _tree(inputs["tmp"]) == before

    assert _ship_cli(capsys, inputs["checkpoint"], "--name", "net", "--out-dir",
                     inputs["weights"]) == (0, "")
    card = json.loads((inputs["weights"] / "net.json").read_text())
    assert card["weights_sha256"] == file_sha256(inputs["weights"] / "net.pt")
    assert sorted(_tree(inputs["weights"])) == ["net.json", "net.pt"]


def test_a_failed_move_puts_the_old_weights_back(inputs, capsys):
    # net.pt moves into place first; net.json cannot (a folder has its name), so net.pt must not
    # stay new beside a card of other bytes.
    (inputs["weights"] / "net.json").unlink()
    (inputs["weights"] / "net.json").mkdir()
    (inputs["weights"] / "net.json/keep").write_text("in the way")
    before = _tree(inputs["tmp"])
    code, err = _ship_cli(capsys, inputs["checkpoint"], "--name", "net", "--out-dir",
                          inputs["weights"])
    assert code == 2 and "Is a directory" in err and str(inputs["weights"] / "net.json") in err
    assert _tree(inputs["tmp"]) == before

    shutil.rmtree(inputs["weights"] / "net.json")
    assert _ship_cli(capsys, inputs["checkpoint"], "--name", "net", "--out-dir",
                     inputs["weights"])[0] == 0
    assert sorted(_tree(inputs["weights"])) == ["net.json", "net.pt"]


def test_the_card_keeps_the_evaluation_of_the_bytes_it_ships(inputs, capsys):
    weights = inputs["weights"]
    shipped, _ = ship(inputs["checkpoint"], "net", None, weights)
    # Scored after the first ship; shipping again writes the same bytes, so its rows are found.
    evaluation = _evaluation(inputs["tmp"] / "eval.json",
                             {"sgbm": None, "psmnet_dws (net.pt)": file_sha256(shipped),
                              "psmnet_dws:runs/a/last.pt": "0" * 64})
    code, _ = _ship_cli(capsys, inputs["checkpoint"], "--name", "net", "--out-dir", weights,
                        "--evaluation", evaluation, "--loss-curve", inputs["log"],
                        "--loss-plot", inputs["tmp"] / "plots/loss.png")
    assert code == 0
    card = json.loads((weights / "net.json").read_text())
    assert set(card["evaluation"]["datasets"]) == {"sgbm", "psmnet_dws (net.pt)"}
    assert card["weights_sha256"] == file_sha256(shipped)
    assert [step for step, _ in card["loss_curve"]] == [1, 2]
    assert (inputs["tmp"] / "plots/loss.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(_tree(weights)) == ["net.json", "net.pt"]


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
