"""Choosing the torch device and the inference precision from user settings; timing on it."""
from __future__ import annotations

import re
import time

import torch

from .errors import ConfigurationError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' or 'cuda:N' only where CUDA really is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigurationError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {name!r} requested but CUDA is not available (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda or 'none'}); use device 'cpu' or 'auto'")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigurationError(f"device {name!r} requested but only "
                                 f"{torch.cuda.device_count()} CUDA device(s) exist")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 (or fp16 where bf16 is missing) on CUDA, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise ConfigurationError(
            f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        if precision == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision
    if precision == "fp16":
        raise ConfigurationError("precision 'fp16' needs a CUDA device; on the CPU use "
                                 "'fp32' or 'bf16'")
    return "fp32" if precision == "auto" else precision


def synchronize(device: torch.device) -> None:
    """Wait until the device has done what was queued on it (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finished_clock(device: torch.device) -> float:
    """time.perf_counter() once the device's queued work is done, so that timings are the work's
    and not only its launch."""
    synchronize(device)
    return time.perf_counter()
