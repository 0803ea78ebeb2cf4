"""The one place network weights are saved and loaded.

Two layouts are read: this project's (`{'format': 'stereo_depth_node', 'model': ...,
'max_disparity': ..., 'state_dict': ...}`) and the public PSMNet one (`{'state_dict': ...}`
with the `module.` prefix that DataParallel adds). Everything loads with `weights_only=True`:
a checkpoint cannot run code.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigurationError
from .models import NEURAL_MODELS, build_model

FORMAT = "stereo_depth_node"
_DATA_PARALLEL_PREFIX = "module."
# conv2.0 of a residual block is a full 3x3 conv in PSMNet and a depthwise one (1 input channel
# per group) in the separable network, so its weight shape tells the architecture apart.
_PROBE_KEY = "feature_extraction.layer1.0.conv2.0.weight"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, model_name: str,
                    half: bool = False, **extra: Any) -> None:
    """Write weights in this project's format; `half` stores floats as fp16 to halve the size."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "model": model_name,
                "max_disparity": int(model.max_disparity), "state_dict": state, **extra}, path)


def detect_architecture(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Name of the registered network these weights belong to, or None if none fits."""
    probe = state_dict.get(_PROBE_KEY)
    if probe is None or probe.dim() != 4:
        return None
    return "psmnet_dws" if probe.shape[1] == 1 else "psmnet"


def _load_failure(exc: Exception) -> str:
    """torch.load's failure in one line. Under weights_only its first lines advise loading with
    weights_only=False, which this package never does (a checkpoint must not run code) and which
    would not help a file that is no checkpoint; the unpickler's own reason follows them, either
    after 'WeightsUnpickler error:' (a global off the allowlist) or as the next paragraph (a
    global from a blocked module such as os or subprocess)."""
    text = str(exc)
    _, marker, reason = text.partition("WeightsUnpickler error:")
    if marker:
        reason = reason.strip().split("\n")[0].split(". Please")[0]
    elif text.startswith("Weights only load failed"):
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        reason = next((p.rstrip(".") for p in paragraphs[1:]
                       if not p.startswith("Check the documentation")), "")
    if not reason:
        return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return f"{reason}; weights are read with weights_only=True, tensors and plain containers only"


def load_torch_file(path: str | os.PathLike, kind: str, expected: str = "") -> Any:
    """torch.load of tensors and plain containers only, or one ConfigurationError naming `kind`
    and the file (and, for a missing one, `expected`: what the file should have been)."""
    if not os.path.isfile(path):
        raise ConfigurationError(f"{kind} {os.fspath(path)!r} does not exist{expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ConfigurationError(f"{kind} {os.fspath(path)!r} is not a readable PyTorch "
                                 f"checkpoint ({_load_failure(exc)})") from exc


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file into `{'state_dict': ..., 'model': ..., 'max_disparity': ...}`.

    The state dict has its DataParallel prefix removed; `model` comes from the file when recorded,
    else from the weight shapes; `max_disparity` is None when the file does not record it.
    """
    raw = load_torch_file(path, "weights file")
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state_dict = raw["state_dict"]
    elif isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        state_dict = raw
    else:
        raise ConfigurationError(
            f"weights file {str(path)!r} holds no state_dict of network weights")
    state_dict = {k.removeprefix(_DATA_PARALLEL_PREFIX): v for k, v in state_dict.items()}
    detected = detect_architecture(state_dict)
    recorded = raw.get("model") if raw.get("format") == FORMAT else None
    if detected is None and recorded is None:
        raise ConfigurationError(
            f"weights file {str(path)!r} holds no PSMNet-family network "
            f"(no {_PROBE_KEY!r}); known networks: {', '.join(sorted(NEURAL_MODELS))}")
    max_disparity = raw.get("max_disparity") if raw.get("format") == FORMAT else None
    return {"state_dict": state_dict, "model": recorded or detected,
            "max_disparity": max_disparity,
            "meta": {k: v for k, v in raw.items() if k != "state_dict"}}


def load_model(path: str | os.PathLike | None, model_name: str, max_disparity: int,
               align_corners: bool = False) -> nn.Module:
    """Build `model_name` and, when `path` is given, fill it with the weights found there.

    Weights of another architecture are refused with a message that names both. Weights recorded
    for another max disparity load: every layer of the PSMNet family is convolutional along
    disparity (see range_notice).
    """
    model = build_model(model_name, max_disparity, align_corners)
    if path is None:
        return model
    checkpoint = read_checkpoint(path)
    if checkpoint["model"] != model_name:
        raise ConfigurationError(
            f"weights file {str(path)!r} holds a {checkpoint['model']!r} network, "
            f"but model {model_name!r} was requested")
    result = model.load_state_dict(checkpoint["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigurationError(
            f"weights file {str(path)!r} does not fit {model_name!r}: "
            f"missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model


SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MAX_DISPARITY = 192


def shipped_weights(model_name: str) -> Path | None:
    """The checkpoint this package ships for `model_name`, if there is one."""
    path = SHIPPED_DIR / f"{model_name}.pt"
    return path if path.is_file() else None


def resolve_weights(model_name: str, weights: str | os.PathLike | None) -> Path | None:
    """'' or 'shipped' -> the shipped checkpoint (None if none ships); 'none' -> None, i.e. the
    network's initial weights; anything else is a path."""
    if model_name not in NEURAL_MODELS:
        return None if not weights or weights in ("shipped", "none") else Path(weights)
    if weights is None or weights in ("", "shipped"):
        return shipped_weights(model_name)
    if weights == "none":
        return None
    return Path(weights)


def range_notice(path: str | os.PathLike | None, max_disparity: int) -> str | None:
    """One line naming the max disparity the weights at `path` were trained with and the one
    used, when they differ; None when they agree or the file records none (public or initial
    weights).

    A difference is allowed: every layer of the PSMNet family is convolutional along disparity,
    so trained filters run on any number of disparity levels; the notice tells the user that the
    range differs from the one the weights learnt."""
    if path is None:
        return None
    trained = read_checkpoint(path)["max_disparity"]
    if trained is None or int(trained) == max_disparity:
        return None
    return (f"weights {Path(path).name!r} were trained with max disparity {int(trained)}; "
            f"running with max disparity {max_disparity}")


def weights_and_range(model_name: str, weights: str | os.PathLike | None,
                      max_disparity: int) -> tuple[Path | None, int]:
    """Resolve a weights setting (see resolve_weights) and a max disparity where 0 means: the
    value recorded in those weights, else the PSMNet default of 192."""
    path = resolve_weights(model_name, weights)
    if max_disparity:
        return path, max_disparity
    recorded = read_checkpoint(path)["max_disparity"] if path is not None else None
    return path, int(recorded) if recorded is not None else DEFAULT_MAX_DISPARITY
