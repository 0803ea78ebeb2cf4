"""`bench live`: the node in its own process, stereo sets in over DDS, every output back.

What a robot sees, transport included, per image size:
- latency: one set at a time, from publishing it to the arrival of the last of its five outputs
  (disparity, depth, depth/camera_info, points2, confidence); its inverse is the closed-loop rate.
  Beside it the node's own median from /diagnostics (set synchronised to last output
  published): the difference is DDS in and out and this client's receipt;
- throughput: sets published at a fixed rate above that (1.5 times it unless given, as a camera
  faster than the node), outputs counted: the node keeps the newest set and drops the others, so
  the output rate is what it sustains. The node's own counts from /diagnostics over the stream
  say where the unanswered sets went: replaced by a newer one while the node was busy, or never
  received whole (lost on the way, or unmatched); processed against answered says whether this
  client missed outputs the node did publish. The node's resident memory is noted every 10 s
  of the stream (`node_rss_mib.every_10_s` in the JSON), so a soak (`--seconds 600`) shows
  whether it grows or settles.

The node runs with warmup_size set to the size, so that cuDNN tuning or compiling (compile:=true)
happens before its ready line; `ready_s` is start-up to that line. `--param NAME:=VALUE` sets any
other parameter of the node (e.g. publish_thread:=true), and GLIBC_TUNABLES, when set, reaches
the node and this client alike; the table's options column names both.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bench import bench_pair, publish_result
from ..bench_cli import add_node_arguments, count_at_least, module_main, register_kind
from ..camera import StereoCamera
from ..errors import ros_missing
from .bench_node import BASELINE_M, FOCAL_PX, SIZES
from .launch_support import READY_LINE

FRAME_ID = "left_camera_optical_frame"
RATE_OVER_CLOSED_LOOP = 1.5
MAX_RATE_HZ = 200.0
RSS_SAMPLE_S = 10.0  # how often a stream notes the node's resident memory (a soak's growth)
START_NS = 1_800_000_000 * 10**9


def _sets(width: int, height: int):
    """Input messages of a textured plane at any stamp (one rendering, restamped)."""
    from .messages import stereo_messages

    left, right = bench_pair(height, width)
    camera = StereoCamera.centred(width, height, FOCAL_PX, BASELINE_M)
    return lambda stamp: stereo_messages(left, right, camera, stamp, FRAME_ID)


def _completed(client, topics: tuple[str, ...]) -> dict[int, float]:
    """Stamp (ns) -> arrival of the last of its outputs, for the sets answered on every topic."""
    last: dict[int, float] = {}
    seen: dict[int, int] = {}
    for topic in topics:
        for arrived, key in client.arrivals(topic):
            seen[key] = seen.get(key, 0) + 1
            last[key] = max(last.get(key, 0.0), arrived)
    return {key: t for key, t in last.items() if seen[key] == len(topics)}


class NodeCounts:
    """The node's counters from its /diagnostics status (published every second)."""

    KEYS = {"received": "received sets", "processed": "processed",
            "dropped_for_newer": "dropped (newer set arrived)",
            "unmatched_messages": "unmatched messages", "rejected": "rejected (bad input)",
            "failed": "failed"}

    def __init__(self, client, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._status_name = f"{namespace}/stereo_depth_node: stereo depth"
        self._latest: tuple[float, dict[str, int]] | None = None
        self._client = client
        client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, 10)

    def _on_array(self, array) -> None:
        for status in array.status:
            if status.name == self._status_name:
                self._latest = (time.monotonic(), {v.key: v.value for v in status.values})

    def _fresh(self, timeout: float) -> dict[str, str]:
        """The values of a status published after this call (so none is stale)."""
        asked = time.monotonic()
        if not self._client.wait_until(lambda: self._latest is not None
                                       and self._latest[0] > asked, timeout):
            raise TimeoutError(f"no /diagnostics status named {self._status_name!r}")
        return self._latest[1]

    def now(self, timeout: float = 5.0) -> dict[str, int]:
        values = self._fresh(timeout)
        return {key: int(values[name]) for key, name in self.KEYS.items()}

    def median_latency_ms(self, timeout: float = 5.0) -> float:
        """The node's own median over its last 100 sets (those sent while connecting
        included), from a set complete at its synchroniser to its last output published: the
        client's latency less this is DDS in and out and the client's own receipt."""
        return float(self._fresh(timeout)["median latency (ms)"])


def _latency(client, make_set, topics, count: int, first_ns: int) -> list[float]:
    from .messages import stamp_ns

    latencies = []
    for index in range(count):
        messages = make_set(first_ns + index * 1_000_000)
        sent = time.monotonic()
        client.send_and_wait(messages, topics, timeout=120.0)
        stamp = stamp_ns(messages["left/image_rect"].header)
        latencies.append((_completed(client, topics)[stamp] - sent) * 1e3)
    return latencies


def _throughput(client, make_set, topics, rate_hz: float, seconds: float, first_ns: int,
                counts: NodeCounts, node) -> dict[str, Any]:
    before, memory_before = counts.now(), node.memory_mib()
    period = 1.0 / rate_hz
    sent: dict[int, float] = {}
    rss_samples: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if time.monotonic() - start >= len(rss_samples) * RSS_SAMPLE_S:
            rss_samples.append(round(node.memory_mib()["rss"], 1))
        stamp = first_ns + len(sent) * 1_000_000
        sent[stamp] = time.monotonic()
        client.publish(make_set(stamp))
        time.sleep(max(0.0, start + len(sent) * period - time.monotonic()))
    # The set in flight and the one waiting in the mailbox still come out.
    client.wait_until(lambda: max(_completed(client, topics), default=0) >= max(sent), 10.0)
    done = {k: t for k, t in _completed(client, topics).items() if k in sent}
    after, memory_after = counts.now(), node.memory_mib()
    arrivals = sorted(done.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {"input_hz": len(sent) / (max(sent.values()) - start + period),
            "sets_sent": len(sent), "sets_answered": len(done),
            "output_pairs_per_s": (len(arrivals) - 1) / span if span > 0 else float("nan"),
            "median_latency_ms": statistics.median((done[k] - sent[k]) * 1e3 for k in done),
            "node_counts": {key: after[key] - before[key] for key in NodeCounts.KEYS},
            # A node that leaks grows over a long stream (--seconds 600 is a soak).
            "node_rss_mib": {"start": memory_before["rss"], "end": memory_after["rss"],
                             "peak": memory_after["peak"],
                             f"every_{RSS_SAMPLE_S:.0f}_s": rss_samples},
            "node_gpu_mib": node.gpu_memory_mib()}


def bench_size(model: str, width: int, height: int, device: str, precision: str,
               compile_network: bool, max_disparity: int, latency_sets: int, seconds: float,
               rate_hz: float | None, log_dir: Path, extra: dict[str, str] | None = None
               ) -> dict[str, Any]:
    from .client import StereoClient
    from .frame import OUTPUT_TOPICS
    from .node_process import NodeProcess

    namespace = f"/bench_live_{width}x{height}"
    parameters = {"model": model, "device": device, "precision": precision,
                  "compile": compile_network, "max_disparity": max_disparity,
                  "warmup_size": f"{width}x{height}", "summary_period": 0.0, **(extra or {})}
    node = NodeProcess(namespace, parameters, log_dir / f"node_{width}x{height}.log")
    client = None
    try:
        ready_s = node.wait_ready(timeout=900.0)
        client = StereoClient(namespace, f"bench_live_{width}x{height}", keep_messages=False)
        counts = NodeCounts(client, namespace)
        make_set = _sets(width, height)
        client.connect(make_set(START_NS), timeout=120.0, resend_s=2.0)
        latencies = _latency(client, make_set, OUTPUT_TOPICS, latency_sets, START_NS + 10**9)
        node_latency = counts.median_latency_ms()
        closed_loop = 1e3 / statistics.median(latencies)
        rate = rate_hz or min(MAX_RATE_HZ, RATE_OVER_CLOSED_LOOP * closed_loop)
        stream = _throughput(client, make_set, OUTPUT_TOPICS, rate, seconds, START_NS + 10**10,
                             counts, node)
    finally:
        if client is not None:
            client.close()
        exit_code = node.stop()
    # "ready: model psmnet_dws on cuda:0 (bf16), max disparity ..." (SGBM names no precision)
    ran = re.match(r" \S+ on (\S+?)(?: \((\w+)\))?(?:,| with)",
                   node.log().split(READY_LINE, 1)[1])
    return {"model": model, "width": width, "height": height, "device": ran.group(1),
            "precision": ran.group(2) or "-", "compile": compile_network, "ready_s": ready_s,
            "latency_ms": {"median": statistics.median(latencies),
                           "p90": float(np.percentile(latencies, 90)), "sets": len(latencies),
                           "node_median": node_latency},
            "closed_loop_pairs_per_s": closed_loop, "stream": stream,
            "node_exit_code": exit_code, "parameters": dict(extra or {}),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}


def bench_live(model: str, sizes: list[tuple[int, int]], device: str = "auto",
               precision: str = "auto", compile_network: bool = False, max_disparity: int = 192,
               latency_sets: int = 10, seconds: float = 10.0, rate_hz: float | None = None,
               log_dir: Path | None = None, extra: dict[str, str] | None = None
               ) -> dict[str, Any]:
    try:
        import rclpy
    except ImportError as exc:
        raise ros_missing(exc) from exc

    from ..bench import machine_description
    from .node_process import tool_arguments, use_local_shared_memory
    from .teardown import bounded_teardown

    use_local_shared_memory()
    rclpy.init(args=tool_arguments())
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for width, height in sizes:
                row = bench_size(model, width, height, device, precision, compile_network,
                                 max_disparity, latency_sets, seconds, rate_hz,
                                 log_dir or Path(scratch), extra)
                rows.append(row)
                print(format_row(row), flush=True)
        finally:
            with bounded_teardown():
                rclpy.try_shutdown()
    return {"benchmark": "live", "max_disparity": max_disparity, "machine": machine_description(),
            "rows": rows, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


TABLE_HEADER = ("| model | size | device | precision | compile | options | ready s | latency "
                "median ms | latency p90 ms | node's own latency ms | closed-loop pairs/s | "
                "input Hz | output pairs/s | answered / sent | node: received / processed / "
                "dropped for newer | node RSS MiB start / end / peak | node GPU MiB | node exit "
                "|\n|" + "---|" * 18)


def options(row: dict[str, Any]) -> str:
    """The parameters given beside the defaults, and the malloc tunables, if any."""
    named = [f"{name}:={value}" for name, value in row.get("parameters", {}).items()]
    if row.get("glibc_tunables"):
        named.append(f"GLIBC_TUNABLES={row['glibc_tunables']}")
    return ", ".join(named) or "-"


def format_row(row: dict[str, Any]) -> str:
    stream, latency = row["stream"], row["latency_ms"]
    cells = [row["model"], f"{row['width']}x{row['height']}", row["device"], row["precision"],
             "inductor" if row["compile"] else "no", options(row), f"{row['ready_s']:.1f}",
             f"{latency['median']:.1f}", f"{latency['p90']:.1f}",
             f"{latency['node_median']:.1f}", f"{row['closed_loop_pairs_per_s']:.3g}",
             f"{stream['input_hz']:.3g}", f"{stream['output_pairs_per_s']:.3g}",
             f"{stream['sets_answered']} / {stream['sets_sent']}",
             " / ".join(str(stream["node_counts"][k])
                        for k in ("received", "processed", "dropped_for_newer")),
             " / ".join(f"{stream['node_rss_mib'][k]:.0f}" for k in ("start", "end", "peak")),
             "-" if stream["node_gpu_mib"] is None else f"{stream['node_gpu_mib']:.0f}",
             str(row["node_exit_code"])]
    return "| " + " | ".join(cells) + " |"


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([f"The node over DDS (its own process, shared memory, this machine), max "
                      f"disparity {result['max_disparity']}", "", TABLE_HEADER,
                      *(format_row(r) for r in result["rows"])]) + "\n"


def node_parameter(text: str) -> tuple[str, str]:
    """NAME:=VALUE, as `ros2 run ... -p` takes it."""
    from .parameters import PARAMETERS

    name, sep, value = text.partition(":=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:=VALUE, got {text!r}")
    # The node would ignore a name it does not declare, and the row would still carry it.
    known = [spec.name for spec in PARAMETERS] + ["use_sim_time"]
    if name not in known and not name.startswith("qos_overrides."):
        raise argparse.ArgumentTypeError(f"the node has no parameter {name!r}; it has "
                                         f"{', '.join(known)} and qos_overrides.*")
    return name, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_node_arguments(parser, list(SIZES))
    parser.add_argument("--compile", action="store_true",
                        help="the node's compile:=true (torch.compile, CUDA only)")
    parser.add_argument("--latency-sets", type=count_at_least(1), default=10,
                        help="sets sent one at a time for the latency")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long sets are streamed for the throughput")
    parser.add_argument("--rate", type=float, help="input rate in Hz while streaming (default: "
                        f"{RATE_OVER_CLOSED_LOOP} times the closed-loop rate, at most "
                        f"{MAX_RATE_HZ:.0f})")
    parser.add_argument("--param", action="append", type=node_parameter, default=[],
                        metavar="NAME:=VALUE", help="another parameter of the node (repeatable)")
    parser.add_argument("--log-dir", type=Path, help="keep the node's logs here")
    parser.add_argument("--json", type=Path, default=Path("bench_live.json"))
    parser.add_argument("--markdown", type=Path)


def run(args: argparse.Namespace) -> int:
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    result = bench_live(args.model, args.sizes, args.device, args.precision, args.compile,
                        args.max_disparity, args.latency_sets, args.seconds, args.rate,
                        args.log_dir, dict(args.param))
    publish_result(result, format_table(result), args.json, args.markdown)
    return 0 if all(row["node_exit_code"] == 0 for row in result["rows"]) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `live` to a subparsers group (the `bench` kinds of the CLI)."""
    register_kind(subparsers, "live", "the node in its own process over DDS: latency and "
                  "sustained rate", add_arguments, run)


if __name__ == "__main__":
    sys.exit(module_main("python -m stereo_depth_node.ros.bench_live", __doc__, add_arguments,
                         run, None))
