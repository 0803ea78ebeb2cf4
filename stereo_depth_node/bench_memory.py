"""`stereo-depth bench memory`: how much memory a process needs to match one image size.

Each backend and size runs in a fresh Python process: freed blocks stay with the allocator, so in
one process every case after the largest would start from that case's footprint. The child
builds the estimator as the node does (shipped weights), notes its resident size, matches the
benchmark pair a few times and reports the largest peak of a frame; on CUDA also torch's own peak
of allocated and reserved GPU memory. Peaks differ from frame to frame (the C allocator's
per-thread arenas; up to 270 MiB at 1280x720 on the development CPU), so the table gives the
largest."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .bench_cli import add_sizes, parse_size, register_kind
from .errors import ConfigurationError, InputError

MEMORY_SIZES = ((320, 240), (640, 480), (1242, 375), (1280, 720))
MIB = 2**20
CASE_TIMEOUT_S = 1800  # generous: psmnet takes about 20 s a 1280x720 frame on a 2-core CPU


def resident_memory_mib(pid: int | str = "self") -> dict[str, float]:
    """A process's resident memory now ("rss") and at its peak ("peak"), from Linux's /proc
    (host memory only)."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[key].split()[0]) / 1024
            for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def _reset_peak() -> bool:
    """Restart the kernel's peak resident size (VmHWM) from the current size (Linux >= 4.0), so
    that each frame's peak is its own; False where /proc does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def measure_case(backend: str, width: int, height: int, max_disparity: int, device: str,
                 precision: str, frames: int) -> dict[str, Any]:
    """One case, in the calling process: meant to be the only thing that process does. Each
    frame's peak is measured on its own where the kernel allows it; otherwise the process's peak
    so far stands for every frame."""
    import torch

    from .bench import bench_pair
    from .estimator import StereoEstimator

    estimator = StereoEstimator(backend, None if backend == "sgbm" else "shipped",
                                max_disparity=max_disparity, device=device, precision=precision)
    matcher_device = torch.device("cpu") if backend == "sgbm" else estimator.device
    left, right = bench_pair(height, width)
    loaded = resident_memory_mib()["rss"]
    peaks = []
    for _ in range(frames):
        per_frame = _reset_peak()
        estimator.estimate(left, right)
        peaks.append(round(resident_memory_mib()["peak"], 1))
    peak = max(peaks)
    row = {"backend": backend, "width": width, "height": height, "device": str(matcher_device),
           "precision": getattr(estimator.matcher, "precision", "uint8"), "frames": frames,
           "loaded_mib": round(loaded, 1), "peak_mib": peak, "frame_mib": round(peak - loaded, 1),
           "frame_peaks_mib": peaks if per_frame else None}
    if matcher_device.type == "cuda":
        cuda = torch.cuda
        row["gpu_peak_allocated_mib"] = round(cuda.max_memory_allocated(matcher_device) / MIB, 1)
        row["gpu_peak_reserved_mib"] = round(cuda.max_memory_reserved(matcher_device) / MIB, 1)
    return row


def _run_case(backend: str, width: int, height: int, max_disparity: int, device: str,
              precision: str, frames: int) -> dict[str, Any]:
    command = [sys.executable, "-m", __name__, "--backend", backend, "--size",
               f"{width}x{height}", "--max-disparity", str(max_disparity), "--device", device,
               "--precision", precision, "--frames", str(frames)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CASE_TIMEOUT_S)
    if done.returncode != 0:
        # The child's last stderr line is its error (an out-of-memory kill leaves none).
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"backend": backend, "width": width, "height": height, "error": reason,
                "returncode": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(backends: list[str], sizes: list[tuple[int, int]], max_disparity: int = 192,
                 device: str = "auto", precision: str = "auto", frames: int = 3
                 ) -> dict[str, Any]:
    """Every backend at every size, each in its own process; rows print as they finish."""
    from .bench import machine_description
    from .devices import resolve_device

    torch_device = resolve_device(device)  # a device this machine lacks fails once, here
    rows = []
    for backend in backends:
        for width, height in sizes:
            row = _run_case(backend, width, height, max_disparity, device, precision, frames)
            rows.append(row)
            print(format_row(row), flush=True)
    return {"benchmark": "memory", "max_disparity": max_disparity, "frames": frames,
            "machine": machine_description(torch_device), "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


TABLE_HEADER = ("| backend | size | device | precision | loaded MiB | peak MiB | frame MiB | "
                "GPU allocated / reserved MiB |\n|---|---|---|---|---|---|---|---|")


def format_row(row: dict[str, Any]) -> str:
    size = f"{row['width']}x{row['height']}"
    if "error" in row:
        return f"| {row['backend']} | {size} | failed: {row['error']} | | | | | |"
    gpu = (f"{row['gpu_peak_allocated_mib']:.0f} / {row['gpu_peak_reserved_mib']:.0f}"
           if "gpu_peak_allocated_mib" in row else "")
    return (f"| {row['backend']} | {size} | {row['device']} | {row['precision']} | "
            f"{row['loaded_mib']:.0f} | {row['peak_mib']:.0f} | {row['frame_mib']:.0f} | {gpu} |")


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([TABLE_HEADER, *(format_row(r) for r in result["rows"])])


def _case_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stereo_depth_node.bench_memory",
                                     description="one case of `stereo-depth bench memory`")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--size", type=parse_size, required=True)
    parser.add_argument("--max-disparity", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--precision", required=True)
    parser.add_argument("--frames", type=int, required=True)
    args = parser.parse_args(argv)
    width, height = args.size
    try:
        row = measure_case(args.backend, width, height, args.max_disparity, args.device,
                           args.precision, args.frames)
    except (ConfigurationError, InputError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(row))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .estimator import BACKENDS

    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    add_sizes(parser, list(MEMORY_SIZES))
    parser.add_argument("--max-disparity", type=int, default=192)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--frames", type=int, default=3, help="pairs matched per case")
    parser.add_argument("--json", type=Path, default=Path("bench_memory.json"))
    parser.add_argument("--markdown", type=Path)


def run(args: argparse.Namespace) -> int:
    from .bench import publish_result
    from .devices import resolve_device

    if args.frames < 1:
        raise ConfigurationError(f"--frames must be >= 1, got {args.frames}")
    resolve_device(args.device)  # before the header: a device this machine lacks is one line
    print(f"memory benchmark, max disparity {args.max_disparity}, {args.frames} pairs a case, "
          f"each case in its own process")
    result = bench_memory(args.backends, args.sizes, args.max_disparity, args.device,
                          args.precision, args.frames)
    publish_result(result, format_table(result), args.json, args.markdown)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    register_kind(subparsers, "memory", "resident (and GPU) memory per backend and image size",
                  add_arguments, run)


if __name__ == "__main__":
    sys.exit(_case_main())
