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


def bench_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 RGB pair every benchmark times: a textured plane, 24 px of disparity (real image
    statistics, never zeros, and the same pixels in every benchmark)."""
    return render_plane_pair(height, width, disparity=24.0, seed=1)


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
                    repeats: int = 3, memory_formats: tuple[str, ...] = ("auto",)
                    ) -> dict[str, Any]:
    """Time `StereoEstimator.estimate` on a rendered textured plane for each backend and size,
    the networks once per weight order in `memory_formats` (neural.MEMORY_FORMATS). The orders
    are timed in turn within each repetition, so that a machine whose speed drifts (a shared VM)
    gives their ratio fairly.

    Networks run with their initial weights: speed does not depend on the weight values.
    """
    rows = []
    torch_device = resolve_device(device)
    for backend in backends:
        estimators = [StereoEstimator(backend, None, max_disparity=max_disparity, device=device,
                                      precision=precision, memory_format=memory_format)
                      for memory_format in (("auto",) if backend == "sgbm" else memory_formats)]
        # OpenCV's SGBM always runs on the CPU.
        backend_device = torch_device if backend != "sgbm" else torch.device("cpu")
        for width, height in sizes:
            left, right = bench_pair(height, width)
            for estimator in estimators:
                for _ in range(warmup):
                    estimator.estimate(left, right)
            if backend_device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(backend_device)
            latencies: list[list[float]] = [[] for _ in estimators]
            for _ in range(repeats):
                for estimator, times in zip(estimators, latencies):
                    start = time.perf_counter()
                    estimator.estimate(left, right)
                    times.append((time.perf_counter() - start) * 1e3)
            for estimator, times in zip(estimators, latencies):
                median = statistics.median(times)
                matcher = estimator.matcher
                row = {"backend": backend, "width": width, "height": height,
                       "device": str(backend_device),
                       "precision": getattr(matcher, "precision", "uint8"),
                       "memory_format": getattr(matcher, "memory_format", "-"),
                       "median_ms": median, "p90_ms": _percentile(times, 90),
                       "pairs_per_s": 1e3 / median, "repeats": repeats}
                if backend_device.type == "cuda" and len(estimators) == 1:
                    row["gpu_peak_mib"] = round(
                        torch.cuda.max_memory_allocated(backend_device) / 2**20)
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


INPUT_SIZES = ((640, 480), (1280, 720))


def _median_ms(work, repeats: int) -> tuple[float, float]:
    work()  # warm-up: first-call allocations and OpenCV's thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), _percentile(times, 90)


def bench_inputs(sizes: list[tuple[int, int]], repeats: int = 20, quality: int = 95,
                 device: str = "cpu") -> dict[str, Any]:
    """What `image_transport:=compressed` and `rectify:=true` cost per stereo set: decoding two
    JPEG views (image_transport's format) and rectifying two raw views from a plumb_bob
    calibration, with maps already computed, as the node does for every frame after the first."""
    from .compressed import decode_compressed, encode_compressed
    from .rectification import Rectifier, example_camera_models

    torch_device = resolve_device(device)
    rectifiers = {"opencv (cpu)": Rectifier()}
    if torch_device.type == "cuda":
        rectifiers[f"torch ({torch_device})"] = Rectifier(torch_device)
    rows = []
    for width, height in sizes:
        views = bench_pair(height, width)
        jpegs = [encode_compressed(view, "jpeg", "rgb8", quality) for view in views]
        models = example_camera_models(width, height, 0.9 * width, 0.12, "plumb_bob")
        sides = list(zip(("left", "right"), views, jpegs, models))
        stages = {"jpeg decode x2": lambda s=sides: [decode_compressed(*jpeg, "bench")
                                                     for _, _, jpeg, _ in s]}
        for name, rectifier in rectifiers.items():
            stages[f"rectify x2, {name}"] = (
                lambda r=rectifier, s=sides: [r.rectify(side, view, model)
                                              for side, view, _, model in s])
            stages[f"decode + rectify x2, {name}"] = (
                lambda r=rectifier, s=sides: [r.rectify(side, decode_compressed(*jpeg, "bench"),
                                                        model) for side, _, jpeg, model in s])
        for stage, work in stages.items():
            median, p90 = _median_ms(work, repeats)
            row = {"stage": stage, "width": width, "height": height, "median_ms": median,
                   "p90_ms": p90, "jpeg_kib": round(sum(len(d) for _, d in jpegs) / 2048, 1)}
            rows.append(row)
            print(f"| {stage} | {width}x{height} | {median:.2f} | {p90:.2f} |", flush=True)
    return {"benchmark": "inputs", "jpeg_quality": quality, "repeats": repeats,
            "machine": machine_description(torch_device), "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


INPUT_TABLE_HEADER = "| stage | size | median ms | p90 ms |\n|---|---|---|---|"


TABLE_HEADER = ("| backend | size | device | precision | weights order | median ms | p90 ms | "
                "pairs/s |\n|---|---|---|---|---|---|---|---|")


def format_row(row: dict[str, Any]) -> str:
    return (f"| {row['backend']} | {row['width']}x{row['height']} | {row['device']} | "
            f"{row['precision']} | {row['memory_format']} | {row['median_ms']:.1f} | "
            f"{row['p90_ms']:.1f} | {row['pairs_per_s']:.3f} |")


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([TABLE_HEADER, *(format_row(r) for r in result["rows"])])


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def publish_result(result: dict[str, Any], table: str, json_path: str | os.PathLike,
                   markdown_path: str | os.PathLike | None = None) -> None:
    """Print the table (what a device call's output tail shows), write JSON and, when asked,
    the table as Markdown, and say where."""
    print()
    print(table)
    write_json(result, json_path)
    if markdown_path:
        Path(markdown_path).write_text(table + "\n")
    print(f"wrote {os.fspath(json_path)}" + (f" and {os.fspath(markdown_path)}"
                                              if markdown_path else ""))
