"""The GPU benchmark matrix: each network alone (eager, CUDA graph, torch.compile) per precision
and image size, with its FLOP count and the share of the card's measured bf16 matrix rate it
reaches; the whole estimator (numpy in, numpy out) and SGBM beside it.

CUDA graphs and torch.compile wrap `model.infer` here; torch.compile wraps it the same way in the
node when its compile parameter is set (NeuralMatcher), CUDA graphs are measured here only. fp32
means fp32 as the node runs it: without TF32.
Every timed case shares one wall-clock budget: cases run in order of importance (every eager
baseline first) and those left when it is spent are listed as skipped, never silently dropped.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .bench import bench_estimator, bench_pair, machine_description, publish_result
from .bench_cli import add_sizes, count_at_least, module_main, register_kind
from .devices import resolve_device, synchronize
from .neural import NeuralMatcher

VARIANTS = ("eager", "graph", "compile", "compile-graph")
PRECISIONS = ("bf16", "fp16", "fp32")
MODELS = ("psmnet_dws", "psmnet")
SIZES = ((640, 480), (1242, 375))
# torch.compile modes: plain inductor kernels, and inductor kernels replayed as one CUDA graph.
COMPILE_MODES = {"compile": "default", "compile-graph": "reduce-overhead"}

Forward = Callable[[torch.Tensor, torch.Tensor], Any]


@dataclass(frozen=True)
class Case:
    model: str
    width: int
    height: int
    precision: str
    variant: str


def plan(models: list[str], sizes: list[tuple[int, int]], precisions: list[str],
         variants: list[str]) -> list[Case]:
    """Every case once, in the order they should run when the budget may not cover them all:
    eager at the first precision everywhere (each speed-up needs its baseline), CUDA graphs
    there, torch.compile for the first model and size (compiling takes about a minute a case),
    eager at the other precisions, then the rest."""
    def cases(chosen_variants: list[str], chosen_models: list[str],
              chosen_sizes: list[tuple[int, int]], chosen_precisions: list[str]) -> list[Case]:
        return [Case(m, w, h, p, v) for v in chosen_variants for m in chosen_models
                for w, h in chosen_sizes for p in chosen_precisions if v in variants]

    first = precisions[:1]
    compiled = [v for v in VARIANTS if v.startswith("compile")]
    order = (cases(["eager"], models, sizes, first) + cases(["graph"], models, sizes, first)
             + cases(compiled, models[:1], sizes[:1], first)
             + cases(["eager"], models, sizes, precisions[1:])
             + cases(list(VARIANTS), models, sizes, precisions))
    return list(dict.fromkeys(order))


def _graphed(forward: Forward, left: torch.Tensor, right: torch.Tensor) -> Forward:
    """`forward` captured once as a CUDA graph on static inputs; a call copies in and replays."""
    static_left, static_right = left.clone(), right.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    # Warm-up off the capture stream: cuDNN autotuning and allocator growth must not be captured.
    with torch.cuda.stream(side):
        for _ in range(3):
            forward(static_left, static_right)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = forward(static_left, static_right)

    def replay(left: torch.Tensor, right: torch.Tensor) -> Any:
        static_left.copy_(left)
        static_right.copy_(right)
        graph.replay()
        return outputs
    return replay


def build_runner(matcher: NeuralMatcher, variant: str, left: torch.Tensor, right: torch.Tensor,
                 compile_backend: str) -> Forward:
    """The network as `variant` runs it, at the matcher's precision. torch.compile wraps the
    network alone, as the node's compile parameter does, and the precision settings stay
    outside what it traces."""
    infer = matcher.model.infer
    if variant.startswith("compile"):
        mode = COMPILE_MODES[variant] if compile_backend == "inductor" else None
        infer = torch.compile(infer, backend=compile_backend, mode=mode, dynamic=False)

    def forward(left: torch.Tensor, right: torch.Tensor) -> Any:
        with matcher.precision_context():
            return infer(left, right)
    return _graphed(forward, left, right) if variant == "graph" else forward


def time_runs(run: Forward, left: torch.Tensor, right: torch.Tensor, device: torch.device,
              warmup: int, repeats: int) -> list[float]:
    """Milliseconds per call: CUDA events around each call on the GPU, the host clock on the CPU."""
    for _ in range(warmup):
        run(left, right)
    synchronize(device)
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(left, right)
            times.append((time.perf_counter() - start) * 1e3)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, end in events:
        start.record()
        run(left, right)
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def count_flops(model: torch.nn.Module, left: torch.Tensor, right: torch.Tensor) -> int:
    """Floating-point operations of one inference (2 per multiply-add), counted by torch."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.infer(left, right)
    return int(counter.get_total_flops())


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 10) -> float | None:
    """The card's bf16 matrix rate as measured here (random operands, median of `repeats`), the
    ceiling the networks' rates are compared with; None off CUDA."""
    if device.type != "cuda":
        return None
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    times = time_runs(lambda x, y: x @ y, a, b, device, warmup=3, repeats=repeats)
    return 2 * size**3 / (statistics.median(times) * 1e-3) / 1e12


def network_inputs(matcher: NeuralMatcher, width: int, height: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmarks' textured plane (real image statistics, never zeros) normalised and padded
    as the estimator feeds the network."""
    left, right = bench_pair(height, width)
    return matcher.to_network_input(left), matcher.to_network_input(right)


def _row(case: Case, status: str, times: list[float] | None = None,
         flops: int | None = None, peak: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {**asdict(case), "status": status}
    if times:
        median = statistics.median(times)
        row.update(median_ms=median, min_ms=min(times), pairs_per_s=1e3 / median,
                   repeats=len(times))
        if flops:
            row["tflops"] = flops / (median * 1e-3) / 1e12
            if peak:
                row["share_of_bf16_peak"] = row["tflops"] / peak
    return row


def run_case(case: Case, device: torch.device, max_disparity: int, warmup: int, repeats: int,
             compile_backend: str, flops: dict[tuple[str, int, int], int]
             ) -> tuple[list[float], float]:
    """Milliseconds per timed call, and the seconds the first call took (capture, compilation
    and cuDNN autotuning included), which plans the next budget."""
    matcher = NeuralMatcher.load(case.model, None, max_disparity, str(device), case.precision)
    with torch.inference_mode():
        left, right = network_inputs(matcher, case.width, case.height)
        key = (case.model, case.width, case.height)
        if key not in flops:
            flops[key] = count_flops(matcher.model, left, right)
        start = time.perf_counter()
        run = build_runner(matcher, case.variant, left, right, compile_backend)
        run(left, right)
        synchronize(device)
        first_call_s = time.perf_counter() - start
        return time_runs(run, left, right, device, warmup, repeats), first_call_s


def _release(device: torch.device, compiled: bool) -> None:
    """Drop compiled code and cached blocks so that one case's memory never limits the next."""
    if compiled:
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_matrix(models: list[str], sizes: list[tuple[int, int]], precisions: list[str],
               variants: list[str], max_disparity: int = 192, device: str = "auto",
               budget_s: float = 120.0, warmup: int = 3, repeats: int = 20,
               compile_backend: str = "inductor", compile_reserve_s: float = 45.0,
               progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every planned case while `budget_s` lasts. A compile case starts only while
    `compile_reserve_s` remain, since compiling cannot stop half-way and takes about a minute."""
    torch_device = resolve_device(device)
    deadline = time.monotonic() + budget_s
    peak = matmul_tflops(torch_device)
    flops: dict[tuple[str, int, int], int] = {}
    rows = []
    for case in plan(models, sizes, precisions, variants):
        needed = compile_reserve_s if case.variant.startswith("compile") else 0.0
        if deadline - time.monotonic() <= needed:
            rows.append(_row(case, "skipped: budget spent"))
            continue
        try:
            times, first_call_s = run_case(case, torch_device, max_disparity, warmup, repeats,
                                           compile_backend, flops)
            row = _row(case, "ok", times, flops.get((case.model, case.width, case.height)), peak)
            row["first_call_s"] = first_call_s
        except Exception as exc:  # one failing variant (a capture, a compile) must not end the run
            row = _row(case, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        finally:
            _release(torch_device, case.variant.startswith("compile"))
        rows.append(row)
        progress(format_row(row, rows))
    return {"benchmark": "network_matrix", "max_disparity": max_disparity,
            "machine": machine_description(torch_device), "device": str(torch_device),
            "bf16_matmul_tflops": peak, "compile_backend": compile_backend,
            "flops_per_pair": {f"{m} {w}x{h}": f for (m, w, h), f in flops.items()},
            "rows": rows, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _baseline(row: dict[str, Any], rows: list[dict[str, Any]], **changes: str) -> float | None:
    """median_ms of the row that differs from `row` only in `changes`."""
    keys = ("model", "width", "height", "precision", "variant")
    wanted = {k: changes.get(k, row[k]) for k in keys}
    for other in rows:
        if all(other[k] == v for k, v in wanted.items()) and "median_ms" in other:
            return other["median_ms"]
    return None


TABLE_HEADER = ("| model | size | precision | variant | median ms | pairs/s | TFLOP/s | "
                "% of bf16 peak | vs eager | vs fp32 eager | first call s | status |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|")


def _ratio(base: float | None, row: dict[str, Any]) -> str:
    return f"{base / row['median_ms']:.2f}x" if base and "median_ms" in row else "-"


def format_row(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One Markdown row; speed-ups are against cases measured in the same run."""
    def number(key: str, digits: int, scale: float = 1.0) -> str:
        return f"{row[key] * scale:.{digits}f}" if row.get(key) is not None else "-"

    cells = [row["model"], f"{row['width']}x{row['height']}", row["precision"], row["variant"],
             number("median_ms", 2), number("pairs_per_s", 1), number("tflops", 1),
             number("share_of_bf16_peak", 1, 100.0),
             _ratio(_baseline(row, rows, variant="eager"), row),
             _ratio(_baseline(row, rows, variant="eager", precision="fp32"), row),
             number("first_call_s", 1), row["status"]]
    return "| " + " | ".join(cells) + " |"


def format_markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    peak = result["bf16_matmul_tflops"]
    lines = [f"Network alone (`model.infer` on device tensors), max disparity "
             f"{result['max_disparity']}, on {machine.get('gpu', result['device'])} "
             f"(torch {machine['torch']}); bf16 matrix rate measured here: "
             + (f"{peak:.0f} TFLOP/s" if peak else "n/a"), "",
             TABLE_HEADER, *(format_row(r, result["rows"]) for r in result["rows"]), "",
             "FLOP per pair (torch's counter, 2 per multiply-add): " + ", ".join(
                 f"{k} {v / 1e12:.3f} T" for k, v in result["flops_per_pair"].items())]
    estimator = result.get("estimator")
    if estimator:
        from .bench import format_table
        lines += ["", f"Whole estimator (numpy in, numpy out), {estimator['precision']}:", "",
                  format_table(estimator)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    add_sizes(parser, list(SIZES))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--max-disparity", type=int, default=192)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds for all network cases together; the rest are skipped")
    parser.add_argument("--compile-reserve", type=float, default=45.0,
                        help="seconds of budget a torch.compile case needs left to start")
    parser.add_argument("--warmup", type=count_at_least(0), default=3)
    parser.add_argument("--repeats", type=count_at_least(1), default=20)
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend ('eager' checks the path cheaply on a CPU)")
    parser.add_argument("--estimator-repeats", type=count_at_least(1), default=10,
                        help="timed runs of the whole estimator per backend and size (0: none)")
    parser.add_argument("--json", type=Path, default=Path("bench_matrix.json"))
    parser.add_argument("--markdown", type=Path)


def run(args: argparse.Namespace) -> int:
    result = run_matrix(args.models, args.sizes, args.precisions, args.variants,
                        args.max_disparity, args.device, args.budget, args.warmup, args.repeats,
                        args.compile_backend, args.compile_reserve)
    if args.estimator_repeats:
        # The estimator at the first precision, the one the matrix ranks first, and SGBM beside.
        result["estimator"] = bench_estimator([*args.models, "sgbm"], args.sizes,
                                              args.max_disparity, args.device,
                                              args.precisions[0], 1, args.estimator_repeats)
        result["estimator"]["precision"] = args.precisions[0]
    publish_result(result, format_markdown(result), args.json, args.markdown)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `matrix` to a subparsers group (the `bench` kinds of the CLI)."""
    register_kind(subparsers, "matrix", "networks alone: eager / CUDA graph / torch.compile x "
                  "precision x size, with FLOP rates", add_arguments, run)


if __name__ == "__main__":
    sys.exit(module_main("python -m stereo_depth_node.device_bench", __doc__, add_arguments, run,
                         None))
