"""The runs behind a set of weights, carried from the weights a run starts from to the weights it
ships, so that a model card counts every step, sample and second of training, on any machine."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .evaluate import file_sha256

# The settings of a run that a reader needs to tell runs apart.
RUN_KEYS = ("model", "max_disparity", "crop_height", "crop_width", "batch_size", "lr",
            "lr_warmup_steps", "freeze_batch_norm", "precision", "rich_scenes", "augment",
            "ground_share", "small_range_share", "dataset")


def run_entry(meta: dict[str, Any]) -> dict[str, Any]:
    """One run, from the metadata of its last training checkpoint."""
    config = meta.get("config", {})
    device = config.get("device")
    return {"steps": int(meta.get("step", 0)), "samples_seen": int(meta.get("samples_seen", 0)),
            "wall_time_s": round(float(meta.get("wall_time_s", 0.0)), 1),
            "trained_on": f"{device} ({meta['gpu']})" if meta.get("gpu") else device,
            **{key: config.get(key) for key in RUN_KEYS if key in config}}


def card_history(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a model card describes; a card written before cards kept a history is one run."""
    if "history" in card:
        return list(card["history"])
    recipe = card.get("recipe", {})
    return [{"steps": card.get("steps", 0), "samples_seen": card.get("samples_seen", 0),
             "wall_time_s": card.get("wall_time_s", 0.0), "trained_on": card.get("trained_on"),
             "model": card.get("model"),
             **{key: recipe[key] for key in RUN_KEYS if key in recipe}}]


def history_of_weights(weights: str | os.PathLike) -> list[dict[str, Any]]:
    """The runs behind a weights file, read from the model card beside it. Empty when there is
    no card, or when the card describes other bytes (its recorded hash, or its file name,
    differs): then the history before the new run is unknown and the card says only what it saw."""
    weights = Path(weights)
    card_path = weights.with_suffix(".json")
    if not card_path.is_file():
        return []
    card = json.loads(card_path.read_text())
    if not isinstance(card, dict) or card.get("file") != weights.name:
        return []
    if "weights_sha256" in card and card["weights_sha256"] != file_sha256(weights):
        return []
    return card_history(card)


def totals(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps, samples and wall time summed over runs; the devices in the order first used."""
    devices = list(dict.fromkeys(str(run.get("trained_on")) for run in history))
    return {"steps": sum(int(run.get("steps", 0)) for run in history),
            "samples_seen": sum(int(run.get("samples_seen", 0)) for run in history),
            "wall_time_s": round(sum(float(run.get("wall_time_s", 0.0)) for run in history), 1),
            "trained_on": ", ".join(devices)}
