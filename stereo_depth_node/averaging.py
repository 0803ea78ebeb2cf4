"""Uniform averages of the weights along one training run (SWA-style), to ship one set of weights
without picking a single checkpoint by its score on the evaluation pairs: fine-tuning at a constant
learning rate moves the weights around a basin, and checkpoints 100 steps apart score up to ten
points apart on one real frame (docs/training_notes.md)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoints import read_checkpoint, save_checkpoint
from .errors import ConfigurationError
from .models import build_model

# Keys a training checkpoint holds that describe the training state, not the weights.
_TRAINING_STATE = ("optimizer", "rng")


def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the mean of the checkpoints' weights (BatchNorm running statistics included) to
    `out`, with the last checkpoint's record (step, samples, run config, history) and the steps
    averaged. Counters (BatchNorm's num_batches_tracked) come from the last checkpoint."""
    if len(paths) < 2:
        raise ConfigurationError("averaging needs at least two checkpoints")
    checkpoints = [read_checkpoint(path) for path in paths]
    first, last = checkpoints[0], checkpoints[-1]
    for path, checkpoint in zip(paths, checkpoints):
        if (checkpoint["model"], checkpoint["max_disparity"]) != (first["model"],
                                                                  first["max_disparity"]):
            raise ConfigurationError(
                f"cannot average {os.fspath(path)!r} ({checkpoint['model']}, max disparity "
                f"{checkpoint['max_disparity']}) with {os.fspath(paths[0])!r} "
                f"({first['model']}, max disparity {first['max_disparity']})")
    averaged = {}
    for key, value in last["state_dict"].items():
        if value.is_floating_point():
            averaged[key] = torch.stack([c["state_dict"][key].float()
                                         for c in checkpoints]).mean(dim=0)
        else:
            averaged[key] = value
    model = build_model(first["model"], int(first["max_disparity"]))
    model.load_state_dict(averaged)
    record = {k: v for k, v in last["meta"].items()
              if k not in (*_TRAINING_STATE, "format", "model", "max_disparity")}
    record["averaged_steps"] = [c["meta"].get("step") for c in checkpoints]
    save_checkpoint(out, model, first["model"], **record)
    return Path(out)
