"""Shipping trained weights: a half-precision checkpoint and a model card (JSON) beside it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import torch

from .bench import machine_description
from .checkpoints import load_model, read_checkpoint, save_checkpoint
from .errors import ConfigurationError
from .evaluate import file_sha256
from .models.parameter_count import count_parameters, count_parameters_per_call
from .train import LOSS_WEIGHTS
from .training_history import RUN_KEYS, run_entry, totals
from .visualize import line_plot

# Every setting that tells runs apart (card_history reads them back from a recipe), and the rest
# of what reproduces a run.
RECIPE_KEYS = (*(key for key in RUN_KEYS if key != "model"), "betas", "steps", "seed", "device",
               "min_layers", "max_layers", "init_weights")


def _log_entries(log_path: Path | None) -> list[dict[str, Any]]:
    """A run's log.jsonl, one dict a line; none without a log."""
    if log_path is None or not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def _losses(log_path: Path | None) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in _log_entries(log_path) if "loss" in e]


def _loss_curve(log_path: Path | None, points: int = 50) -> list[list[float]]:
    losses = _losses(log_path)
    stride = max(len(losses) // points, 1)
    return [[step, round(loss, 4)] for step, loss in losses[::stride]]


def write_loss_plot(log_path: str | os.PathLike, png_path: str | os.PathLike, title: str
                    ) -> None:
    """Every logged training loss of a run against its step, as a PNG."""
    losses = _losses(Path(log_path))
    if len(losses) < 2:
        raise ConfigurationError(f"{os.fspath(log_path)!r} has {len(losses)} logged losses; a "
                                 f"curve needs 2")
    cv2.imwrite(os.fspath(png_path), line_plot(losses, title, "step"))


def _validation_curve(log_path: Path | None) -> list[list[float]]:
    return [[e["step"], round(e["val_synthetic_epe"], 4)] for e in _log_entries(log_path)
            if "val_synthetic_epe" in e]


def ship(checkpoint: str | os.PathLike, name: str, evaluation: str | os.PathLike | None,
         out_dir: str | os.PathLike, loss_log: str | os.PathLike | None = None,
         notes: str = "") -> tuple[Path, Path]:
    """weights/<name>.pt (fp16, weights only) and weights/<name>.json from a training checkpoint.

    The card's steps, samples and wall time add up every run behind the weights (`history`);
    `recipe` and the curves are those of the last run."""
    source = read_checkpoint(checkpoint)
    meta = source["meta"]
    model = load_model(checkpoint, source["model"], int(source["max_disparity"]))
    out_dir = Path(out_dir)
    weights_path, card_path = out_dir / f"{name}.pt", out_dir / f"{name}.json"
    save_checkpoint(weights_path, model, source["model"], half=True, step=meta.get("step"),
                    samples_seen=meta.get("samples_seen"))
    config = meta.get("config", {})
    log_path = Path(loss_log) if loss_log else None
    history = [*meta.get("history", []), run_entry(meta)]
    card: dict[str, Any] = {
        "name": name, "model": source["model"], "file": weights_path.name,
        "file_mib": round(weights_path.stat().st_size / 2**20, 2), "storage": "float16",
        "parameters": count_parameters(model),
        "parameters_per_call_paper_convention": count_parameters_per_call(model),
        "max_disparity": int(source["max_disparity"]),
        "recipe": {**{k: config.get(k) for k in RECIPE_KEYS},
                   "loss": f"smooth L1, weights {list(LOSS_WEIGHTS)} on the three outputs",
                   "optimizer": "Adam", "data": config.get("dataset") or
                   "synthetic generator (stereo_depth_node/data/generator.py)"},
        **totals(history), "history": history,
        **({"averaged_steps": meta["averaged_steps"]} if "averaged_steps" in meta else {}),
        "weights_sha256": file_sha256(weights_path), "torch": torch.__version__,
        "shipped_on": machine_description(), "notes": notes,
        "loss_curve": _loss_curve(log_path),
        "validation_synthetic_epe": _validation_curve(log_path),
    }
    if evaluation is not None:
        card["evaluation"] = card_evaluation(json.loads(Path(evaluation).read_text()),
                                             card["weights_sha256"])
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights_path, card_path


def card_evaluation(result: dict[str, Any], weights_sha256: str) -> dict[str, Any]:
    """The part of a `stereo-depth eval` result that a card keeps: how it was run, the ranges,
    and per dataset the rows of the classical baselines and of these weights (these bytes,
    whatever the file was called when scored), with their means over the real pairs."""
    kept = {key: result.get(key) for key in ("command", "machine", "created", "scoring_ranges")}
    methods = {label: method for label, method in result["methods"].items()
               if label.startswith("sgbm") or method.get("weights_sha256") == weights_sha256}
    kept["datasets"] = {label: method["datasets"] for label, method in methods.items()}
    kept["real_pair_means"] = {label: method.get("real_pair_means")
                               for label, method in methods.items()}
    return kept


def update_card_evaluations(result: dict[str, Any], weights_dir: str | os.PathLike
                            ) -> list[Path]:
    """Replace the evaluation in the card of every weights file in `weights_dir` that `result`
    scored (the same bytes, not only the same name); the rest of each card (the training facts)
    stays. Returns the cards written."""
    scored = {method.get("weights_sha256") for method in result["methods"].values()}
    written = []
    for card_path in sorted(Path(weights_dir).glob("*.json")):
        card = json.loads(card_path.read_text())
        if not isinstance(card, dict) or "file" not in card:
            continue  # not a model card (the evaluation itself lives here too)
        sha256 = file_sha256(Path(weights_dir) / card["file"])
        if sha256 in scored:
            card["evaluation"] = card_evaluation(result, sha256)
            card_path.write_text(json.dumps(card, indent=2) + "\n")
            written.append(card_path)
    return written
