"""Benchmarks that print a table and write JSON: median latency and throughput per backend."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.plane import render_plane_pair
from .devices import resolve_device
from .estimator import StereoEstimator

ESTIMATOR_SIZES = ((320, 240), (640, 480), (1242, 375))


def machine_description(device: torch.device | None = None) -> dict[str, Any]:
    info = {"platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_estimator(backends: list[str], sizes: list[tuple[int, int]], max_disparity: int = 192,
                    device: str = "auto", precision: str = "auto", warmup: int = 1,
                    repeats: int = 3) -> dict[str, Any]:
    """Time `StereoEstimator.estimate` on a rendered textured plane for each backend and size.

    Networks run with their initial weights: speed does not depend on the weight values.
    """
    rows = []
    torch_device = resolve_device(device)
    for backend in backends:
        estimator = StereoEstimator(backend, max_disparity=max_disparity, device=device,
                                    precision=precision)
        matcher = estimator.matcher
        # OpenCV's SGBM always runs on the CPU.
        backend_device = torch_device if backend != "sgbm" else torch.device("cpu")
        for width, height in sizes:
            left, right = render_plane_pair(height, width, disparity=24.0, seed=1)
            for _ in range(warmup):
                estimator.estimate(left, right)
            if backend_device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(backend_device)
            latencies = []
            for _ in range(repeats):
                start = time.perf_counter()
                estimator.estimate(left, right)
                latencies.append((time.perf_counter() - start) * 1e3)
            median = statistics.median(latencies)
            row = {"backend": backend, "width": width, "height": height,
                   "device": str(backend_device),
                   "precision": getattr(matcher, "precision", "uint8"),
                   "median_ms": median, "p90_ms": _percentile(latencies, 90),
                   "pairs_per_s": 1e3 / median, "repeats": repeats}
            if backend_device.type == "cuda":
                row["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(backend_device) / 2**20)
            rows.append(row)
            print(format_row(row), flush=True)
    return {"benchmark": "estimator", "max_disparity": max_disparity,
            "machine": machine_description(torch_device), "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def bench_generator(height: int = 256, width: int = 512, batch_size: int = 4, batches: int = 5,
                    device: str = "auto", max_disparity: int = 192) -> dict[str, Any]:
    """Samples per second of the synthetic stereo generator (median over batches)."""
    from .data.generator import GeneratorConfig, SyntheticStereo

    torch_device = resolve_device(device)
    generator = SyntheticStereo(GeneratorConfig(height=height, width=width,
                                                max_disparity=max_disparity), device=torch_device)
    generator.batch(0, batch_size)  # warm-up
    seconds = []
    for index in range(1, batches + 1):
        start = time.perf_counter()
        generator.batch(index, batch_size)
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"benchmark": "generator", "machine": machine_description(torch_device),
            "device": str(torch_device), "height": height, "width": width,
            "batch_size": batch_size, "batches": batches, "median_batch_s": median,
            "samples_per_s": batch_size / median,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


TABLE_HEADER = ("| backend | size | device | precision | median ms | p90 ms | pairs/s |\n"
                "|---|---|---|---|---|---|---|")


def format_row(row: dict[str, Any]) -> str:
    return (f"| {row['backend']} | {row['width']}x{row['height']} | {row['device']} | "
            f"{row['precision']} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | "
            f"{row['pairs_per_s']:.3f} |")


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([TABLE_HEADER, *(format_row(r) for r in result["rows"])])


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
