"""`bench train-step`: where a training step's time goes, for a training config as it runs.

The same model, data, precision and step as `stereo-depth train` (initial weights: speed does not
depend on the values). After warm-up (cuDNN's algorithm search), each timed step is split by
waiting for the device after each phase: making the batch (generator and augmentation), forward
pass with the loss, backward pass, optimiser step. Waiting removes the overlap between phases, so
the step is also timed whole, without the waits, twice: with the batch made between steps, and
made ahead in a worker thread during the step before (`batches_ahead`, data/batch_source.py).
Then torch's profiler records a few more steps: the operators that took the most time on the
device (or on the CPU without one), and how much of the profiled time the device was busy, which
says whether the GPU waits for the CPU. `--batch-sizes` times other batch sizes the same way
(without the profile), with the device's peak memory: whether a larger batch uses the GPU better.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .bench import machine_description, publish_result
from .bench_cli import count_at_least, module_main, register_kind
from .data.batch_source import BatchSource
from .devices import finished_clock, resolve_device, resolve_precision
from .models import build_model
from .neural import MEMORY_FORMATS
from .train import (TrainConfig, makes_batches_ahead, place_for_training, synthetic_batches,
                    training_step, training_tools)

PHASES = ("data", "forward", "backward", "optimizer")
WAYS = ("in_turn", "ahead")  # the batch made between steps, or during the step before
TOP_OPERATORS = 15


def _profile(step_once, steps: int, device: torch.device) -> dict[str, Any]:
    """Busy share of the device over `steps` profiled steps and the operators that took most."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        start = finished_clock(device)
        for _ in range(steps):
            step_once()
        wall_us = (finished_clock(device) - start) * 1e6
    averages = profiler.key_averages()
    key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    busy_share = events_per_step = None
    if on_gpu:
        busy_share = sum(getattr(event, key) for event in averages) / wall_us
        # Kernels and copies: thousands of small ones a step mean the GPU waits for their launches.
        events_per_step = sum(event.count for event in averages
                              if event.device_type == torch.autograd.DeviceType.CUDA) / steps
    top = sorted(averages, key=lambda event: getattr(event, key), reverse=True)[:TOP_OPERATORS]
    return {"steps": steps, "wall_ms": wall_us / 1e3, "device_busy_share": busy_share,
            "device_events_per_step": events_per_step, "sorted_by": key,
            "operators": [{"name": event.key, "calls": event.count,
                           "self_ms": getattr(event, key) / 1e3,
                           "share": getattr(event, key) / wall_us} for event in top]}


def _row(config: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         device: torch.device, precision: str, warmup: int, repeats: int, profile_steps: int
         ) -> dict[str, Any]:
    """One batch size: the phases, the step whole both ways, the profile (0 steps: none)."""
    autocast, scaler = training_tools(device, precision)
    make = synthetic_batches(config, device, rank=0)
    step = 0

    def step_once(batches: Callable[[int], Any] = make, mark=None) -> None:
        nonlocal step
        batch = batches(step)
        if mark:
            mark("data")
        training_step(model, batch, optimizer, scaler, autocast, config.max_disparity, mark)
        step += 1

    def whole_step_ms(batches: Callable[[int], Any]) -> float:
        times = []
        for _ in range(repeats):
            start = finished_clock(device)
            step_once(batches)
            times.append((finished_clock(device) - start) * 1e3)
        return statistics.median(times)

    first = finished_clock(device)
    for _ in range(warmup):
        step_once()
    warmup_s = finished_clock(device) - first
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(repeats):
        last = finished_clock(device)

        def mark(phase: str) -> None:
            nonlocal last
            now = finished_clock(device)
            phases[phase].append((now - last) * 1e3)
            last = now
        step_once(mark=mark)
    # The step whole, as `train` runs it: with the batch made in turn, and made ahead in a worker
    # (batch_source.py), where it overlaps the step before (the first timed step waits for its
    # batch: the worker starts with it).
    step_ms = {"in_turn": whole_step_ms(make)}
    with BatchSource(make, device, ahead=True) as ahead:
        step_once(ahead)
        step_ms["ahead"] = whole_step_ms(ahead)
        profile = None
        as_trained = makes_batches_ahead(config, device)
        if profile_steps:
            profile = _profile(lambda: step_once(ahead if as_trained else make),
                               profile_steps, device)
    return {"model": config.model, "crop": f"{config.crop_width}x{config.crop_height}",
            "batch_size": config.batch_size, "max_disparity": config.max_disparity,
            "device": str(device), "precision": precision, "warmup_s": warmup_s,
            "phases_ms": {phase: statistics.median(values) for phase, values in phases.items()},
            "step_ms": step_ms,
            "samples_per_s": {way: config.batch_size / ms * 1e3 for way, ms in step_ms.items()},
            "peak_device_memory_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30
                                       if device.type == "cuda" else None),
            "profiled_batches_ahead": as_trained, "profile": profile}


def bench_train_step(config: TrainConfig, warmup: int = 3, repeats: int = 5,
                     profile_steps: int = 3, batch_sizes: list[int] | None = None
                     ) -> dict[str, Any]:
    """Rows for the config's batch size (profiled) and then each other size in `batch_sizes`:
    whether a larger batch uses the device better. A size that does not fit in the device's
    memory gets a row saying so, and the next one is tried."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.max_disparity)
    memory_format = place_for_training(model, config, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    sizes = [config.batch_size] + [b for b in batch_sizes or [] if b != config.batch_size]
    rows = []
    for index, size in enumerate(sizes):
        sized = dataclasses.replace(config, batch_size=size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            rows.append(_row(sized, model, optimizer, device, precision, warmup, repeats,
                             profile_steps if index == 0 else 0))
        except torch.cuda.OutOfMemoryError:
            rows.append({"model": config.model, "batch_size": size, "out_of_memory": True})
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    return {"benchmark": "train-step", "machine": machine_description(device),
            "memory_format": memory_format, "warmup": warmup, "repeats": repeats, "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def format_table(result: dict[str, Any]) -> str:
    columns = ["model", "crop", "batch", "device", "precision", *(f"{p} ms" for p in PHASES),
               "step ms, batch in turn", "step ms, batch ahead", "samples/s in turn",
               "samples/s ahead", "peak device GiB", "device busy", "device events a step"]
    lines = ["A training step, phases waited for one by one; the step whole without the waits, "
             "with the batch made in turn and made ahead in a worker thread; weights in "
             f"{result['memory_format']} order", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in result["rows"]:
        if row.get("out_of_memory"):
            lines.append(f"| {row['model']} | | {row['batch_size']} | out of device memory |"
                         + " |" * (len(columns) - 4))
            continue
        profile = row["profile"] or {}
        peak = row["peak_device_memory_gib"]
        busy, events = profile.get("device_busy_share"), profile.get("device_events_per_step")
        lines.append("| " + " | ".join([
            row["model"], row["crop"], str(row["batch_size"]), row["device"], row["precision"],
            *(f"{row['phases_ms'][phase]:.1f}" for phase in PHASES),
            *(f"{row['step_ms'][way]:.1f}" for way in WAYS),
            *(f"{row['samples_per_s'][way]:.2f}" for way in WAYS),
            "-" if peak is None else f"{peak:.1f}", "-" if busy is None else f"{100 * busy:.0f} %",
            "-" if events is None else f"{events:.0f}"]) + " |")
    for row in result["rows"]:
        profile = row.get("profile")
        if not profile:
            continue
        lines += ["", f"Operators by {profile['sorted_by']} over {profile['steps']} profiled "
                  f"steps ({profile['wall_ms']:.0f} ms), batch made "
                  f"{'ahead' if row['profiled_batches_ahead'] else 'in turn'}:", "",
                  "| operator | calls | self ms | share of the steps |", "|---|---|---|---|"]
        lines += [f"| {op['name']} | {op['calls']} | {op['self_ms']:.1f} | "
                  f"{100 * op['share']:.1f} % |" for op in profile["operators"]]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True,
                        help="a training config (config/train_gpu_continue.yaml)")
    parser.add_argument("--device", help="overrides the config's device")
    parser.add_argument("--memory-format", choices=MEMORY_FORMATS,
                        help="overrides the config's weight order (memory_format)")
    parser.add_argument("--warmup", type=count_at_least(0), default=3)
    parser.add_argument("--repeats", type=count_at_least(1), default=5)
    parser.add_argument("--profile-steps", type=int, default=3, help="0: no profile")
    parser.add_argument("--batch-sizes", type=int, nargs="+", metavar="N",
                        help="also time these batch sizes (not profiled)")
    parser.add_argument("--json", type=Path, default=Path("bench_train_step.json"))
    parser.add_argument("--markdown", type=Path)


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.from_yaml(args.config, device=args.device,
                                   memory_format=args.memory_format)
    result = bench_train_step(config, args.warmup, args.repeats, args.profile_steps,
                              args.batch_sizes)
    publish_result(result, format_table(result), args.json, args.markdown)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train-step` to a subparsers group (the `bench` kinds of the CLI)."""
    register_kind(subparsers, "train-step", "one training step per phase, and a profile",
                  add_arguments, run)


if __name__ == "__main__":
    sys.exit(module_main("python -m stereo_depth_node.train_bench", __doc__, add_arguments, run,
                         None))
