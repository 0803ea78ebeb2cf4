"""Shipping trained weights: a half-precision checkpoint and a model card (JSON) beside it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .bench import machine_description
from .checkpoints import load_model, read_checkpoint, save_checkpoint
from .errors import ConfigurationError
from .evaluate import file_sha256
from .models import NEURAL_MODELS
from .models.parameter_count import count_parameters, count_parameters_per_call
from .train import LOSS_WEIGHTS
from .training_history import RUN_KEYS, run_entry, totals
from .visualize import line_plot

# Every setting that tells runs apart (card_history reads them back from a recipe), and the rest
# of what reproduces a run.
RECIPE_KEYS = (*(key for key in RUN_KEYS if key != "model"), "betas", "steps", "seed", "device",
               "min_layers", "max_layers", "init_weights")


def _reason(exc: Exception) -> str:
    """Why a file could not be read, without repeating its name (OSError's text names it)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{what} {str(path)!r} cannot be read ({_reason(exc)})"
                                 ) from exc


def _parse_json(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{what} {str(path)!r} is not JSON ({exc})") from exc


def _read_log(log_path: Path) -> list[dict[str, Any]]:
    """A run's log.jsonl, one dict a line. A missing log is refused rather than read as empty:
    the card would then say the run logged no loss."""
    entries = []
    for number, line in enumerate(_read_text(log_path, "loss curve").splitlines(), 1):
        if line.strip():
            entry = _parse_json(line, log_path, f"line {number} of loss curve")
            if not isinstance(entry, dict):
                raise ConfigurationError(f"line {number} of loss curve {str(log_path)!r} is "
                                         f"not a JSON object")
            entries.append(entry)
    return entries


def _losses(log: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in log if "loss" in e]


def _loss_curve(log: list[dict[str, Any]], points: int = 50) -> list[list[float]]:
    losses = _losses(log)
    stride = max(len(losses) // points, 1)
    return [[step, round(loss, 4)] for step, loss in losses[::stride]]


def _loss_plot(log: list[dict[str, Any]], log_path: Path, title: str) -> np.ndarray:
    """Every logged training loss of a run against its step."""
    losses = _losses(log)
    if len(losses) < 2:
        raise ConfigurationError(f"{str(log_path)!r} has {len(losses)} logged losses; a curve "
                                 f"needs 2")
    return line_plot(losses, title, "step")


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = cv2.imwrite(os.fspath(path), image)
    except cv2.error as exc:  # an extension OpenCV has no writer for
        raise ConfigurationError(f"cannot write the loss plot {str(path)!r}: give a .png") from exc
    if not written:
        raise ConfigurationError(f"cannot write the loss plot {str(path)!r}")


def _validation_curve(log: list[dict[str, Any]]) -> list[list[float]]:
    return [[e["step"], round(e["val_synthetic_epe"], 4)] for e in log
            if "val_synthetic_epe" in e]


def _check_name(name: str) -> None:
    """The files go to out_dir/<name>.pt and .json, and the staging folder beside them starts
    with '.', so a name must neither leave out_dir nor be hidden."""
    if not name or name.startswith(".") or Path(name).name != name:
        raise ConfigurationError(f"--name {name!r} must be a plain file name: not empty, no "
                                 f"path separator, not starting with '.'")


def _check_network(name: str, checkpoint: Path, model: str) -> None:
    """A file named after a network is what the node and the CLI load for that network: holding
    another one, it would be refused there (and over the shipped name, replace good weights)."""
    if name in NEURAL_MODELS and name != model:
        raise ConfigurationError(f"--name {name!r} is the weights file of the {name!r} network, "
                                 f"but {str(checkpoint)!r} holds a {model!r} network: give "
                                 f"--name {model} or a name that is no network's")


def _read_training_checkpoint(checkpoint: Path) -> dict[str, Any]:
    source = read_checkpoint(checkpoint)
    if source["max_disparity"] is None:
        raise ConfigurationError(f"weights file {str(checkpoint)!r} records no max disparity: "
                                 f"ship takes the checkpoints of stereo-depth train or average")
    return source


def _read_evaluation(path: Path) -> dict[str, Any]:
    """The JSON that `stereo-depth eval --json` wrote, with the parts a card keeps."""
    result = _parse_json(_read_text(path, "evaluation"), path, "evaluation")
    methods = result.get("methods") if isinstance(result, dict) else None
    if not isinstance(methods, dict) or not all(isinstance(m, dict) and "datasets" in m
                                                for m in methods.values()):
        raise ConfigurationError(f"evaluation {str(path)!r} is not the JSON of stereo-depth "
                                 f"eval (no 'methods' with their 'datasets')")
    return result


def _check_scored(result: dict[str, Any], weights_sha256: str, path: Path, name: str) -> None:
    """The card keeps the baselines' rows and those of these bytes; without the latter it would
    show only other methods' numbers under these weights' name."""
    methods = result["methods"]
    if any(m.get("weights_sha256") == weights_sha256 for m in methods.values()):
        return
    held = ", ".join(methods) or "no method"
    raise ConfigurationError(
        f"evaluation {str(path)!r} did not score the weights being shipped (sha256 "
        f"{weights_sha256[:12]}...); it holds {held}. Ship without --evaluation, then score "
        f"{name}.pt with stereo-depth eval --methods MODEL:PATH --update-cards OUT_DIR")


def _card(name: str, weights_path: Path, model: torch.nn.Module, source: dict[str, Any],
          log: list[dict[str, Any]], notes: str) -> dict[str, Any]:
    meta = source["meta"]
    config = meta.get("config", {})
    history = [*meta.get("history", []), run_entry(meta)]
    return {
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
        "loss_curve": _loss_curve(log), "validation_synthetic_epe": _validation_curve(log),
    }


def _install(staging: Path, out_dir: Path, names: tuple[str, ...]) -> None:
    """Move the staged files over their namesakes in out_dir, all or none: each old file stays
    linked in `staging` until every new one is in place, so that a failed move puts the old ones
    back instead of leaving new weights beside an old card."""
    moved = []
    try:
        for name in names:
            if (out_dir / name).is_file():
                os.link(out_dir / name, staging / f"previous-{name}")
            os.replace(staging / name, out_dir / name)
            moved.append(name)
    except OSError:
        for name in moved:
            previous = staging / f"previous-{name}"
            if previous.exists():
                os.replace(previous, out_dir / name)
            else:
                (out_dir / name).unlink()
        raise


def ship(checkpoint: str | os.PathLike, name: str, evaluation: str | os.PathLike | None,
         out_dir: str | os.PathLike, loss_log: str | os.PathLike | None = None,
         notes: str = "", loss_plot: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """out_dir/<name>.pt (fp16, weights only) and out_dir/<name>.json from a training checkpoint,
    and the run's losses drawn into `loss_plot` when given.

    The card's steps, samples and wall time add up every run behind the weights (`history`);
    `recipe` and the curves are those of the last run. Every input is read and checked before
    anything is written, and both files replace their predecessors together or not at all."""
    _check_name(name)
    source = _read_training_checkpoint(Path(checkpoint))
    _check_network(name, Path(checkpoint), source["model"])
    model = load_model(checkpoint, source["model"], int(source["max_disparity"]))
    result = None if evaluation is None else _read_evaluation(Path(evaluation))
    if loss_plot is not None and loss_log is None:
        raise ConfigurationError("--loss-plot draws the run in --loss-curve; give both")
    log = [] if loss_log is None else _read_log(Path(loss_log))
    plot = None if loss_plot is None else _loss_plot(log, Path(loss_log),
                                                     f"{name}: training loss")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = (f"{name}.pt", f"{name}.json")
    # Staged in out_dir (one file system, so the moves are renames) under the final file names:
    # torch.save names its archive after the file, so another name would change the bytes and
    # the sha256 an evaluation of the shipped file recorded.
    with tempfile.TemporaryDirectory(prefix=".ship-", dir=out_dir) as staging:
        staged = Path(staging) / files[0]
        meta = source["meta"]
        save_checkpoint(staged, model, source["model"], half=True, step=meta.get("step"),
                        samples_seen=meta.get("samples_seen"))
        card = _card(name, staged, model, source, log, notes)
        if result is not None:
            _check_scored(result, card["weights_sha256"], Path(evaluation), name)
            card["evaluation"] = card_evaluation(result, card["weights_sha256"])
        (Path(staging) / files[1]).write_text(json.dumps(card, indent=2) + "\n")
        if plot is not None:
            _write_png(Path(loss_plot), plot)
        _install(Path(staging), out_dir, files)
    return out_dir / files[0], out_dir / files[1]


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
