"""`bench node`: one stereo set of messages in, every output message out, timed per stage.

Stages, each the node's own code: decode (Image messages to arrays), to tensor and back (upload,
normalise, pad; crop), network (`model.infer` alone), post-processing (confidence threshold,
depth, points and packed colours on the matching device, then one copy of every map to the host),
point-cloud packing (PointCloud2 from the packed array), the other messages, and
serialisation (`rclpy.serialization.serialize_message`, the CPU side of publishing; the DDS
transport itself is not timed). End to end is `process_stereo_messages` plus serialisation.

rclpy and the message packages are optional here, so that the GPU machine, which has none, still
measures everything up to the messages: without them the input messages are plain objects with
the Image fields, and the three message stages are reported as not measured.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..bench import bench_pair, machine_description, publish_result
from ..bench_cli import (add_memory_formats, add_node_arguments, count_at_least, module_main,
                         register_kind)
from ..device_bench import network_inputs
from ..devices import finished_clock
from ..estimator import StereoEstimator
from ..neural import NeuralMatcher
from ..pipeline import OutputSettings, process_frame
from .conversions import ImageDecoder, array_to_image_fields

SIZES = ((640, 480), (1242, 375))
# match is the estimator's whole call; to_tensor_and_back and network are its two parts.
STAGES = ("decode", "match", "to_tensor_and_back", "network", "post_processing", "pack_points",
          "pack_other_messages", "serialize", "end_to_end")
FOCAL_PX, BASELINE_M = 500.0, 0.12
LEFT_TOPIC, RIGHT_TOPIC = "left/image_rect", "right/image_rect"


def _ros() -> SimpleNamespace | None:
    """The ROS pieces the message stages need, or None where rclpy is not installed."""
    try:
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        from .frame import process_stereo_messages
        from .messages import point_cloud
    except ImportError:
        return None
    return SimpleNamespace(serialize=serialize_message, CameraInfo=CameraInfo, Image=Image,
                           Header=Header, process=process_stereo_messages, point_cloud=point_cloud)


def _projections(width: int, height: int) -> tuple[list[float], list[float]]:
    cx, cy = (width - 1) / 2, (height - 1) / 2
    left = [FOCAL_PX, 0.0, cx, 0.0, 0.0, FOCAL_PX, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    right = list(left)
    right[3] = -FOCAL_PX * BASELINE_M
    return left, right


def input_messages(width: int, height: int, ros: SimpleNamespace | None) -> list[Any]:
    """Left and right rgb8 Image messages of a textured plane, and their CameraInfos."""
    left, right = bench_pair(height, width)
    p_left, p_right = _projections(width, height)
    if ros is None:
        header = SimpleNamespace(frame_id="left_optical")
        images = [SimpleNamespace(header=header, **array_to_image_fields(img, "rgb8"))
                  for img in (left, right)]
        infos = [SimpleNamespace(width=width, height=height, p=p) for p in (p_left, p_right)]
    else:
        header = ros.Header(frame_id="left_optical")
        images = [ros.Image(header=header, **array_to_image_fields(img, "rgb8"))
                  for img in (left, right)]
        infos = [ros.CameraInfo(header=header, width=width, height=height, p=p)
                 for p in (p_left, p_right)]
    return [*images, *infos]


def _network(estimator: StereoEstimator, inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    estimator.matcher.infer(*inputs)


class _TimedEstimator:
    """The estimator as the node's frame code sees it, remembering how long its last estimate
    took, so that one pass through `process_stereo_messages` splits into network and the rest."""

    def __init__(self, estimator: StereoEstimator) -> None:
        self._estimator = estimator
        self.last_ms = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._estimator, name)

    def estimate_maps(self, left: Any, right: Any) -> Any:
        result = self._estimator.estimate_maps(left, right)
        self.last_ms = result.timings_ms["total"]
        return result


def bench_frame(estimator: StereoEstimator, width: int, height: int, warmup: int, repeats: int,
                ros: SimpleNamespace | None) -> dict[str, Any]:
    """Median milliseconds per stage for one image size (see the module docstring).

    Each iteration times the pieces (decode, process_frame, point-cloud packing), the network
    alone, and the node's whole frame function with serialisation, one after the other, so that
    the stages that are differences (to tensor and back, the other messages) compare runs made
    under the same conditions; within the noise such a difference can come out slightly below
    zero. `first_frame_s` is the first frame's decode and processing, compiling included.
    """
    device = estimator.device
    left_msg, right_msg, left_info, right_info = input_messages(width, height, ros)
    decoder, settings = ImageDecoder(), OutputSettings()
    timed_estimator = _TimedEstimator(estimator)
    neural = isinstance(estimator.matcher, NeuralMatcher)
    if neural:
        with torch.inference_mode():
            inputs = network_inputs(estimator.matcher, width, height)
    samples: dict[str, list[float]] = {key: [] for key in (
        "decode", "post_processing", "pack_points", "network", "match", "messages",
        "serialize", "end_to_end")}
    first_frame_s = float("nan")
    for index in range(warmup + repeats):
        times: dict[str, float] = {}
        start = finished_clock(device)
        left = decoder.to_rgb(left_msg, LEFT_TOPIC)
        right = decoder.to_rgb(right_msg, RIGHT_TOPIC)
        decoded = finished_clock(device)
        output = process_frame(estimator, left, right, left_info.p, right_info.p, settings)
        framed = finished_clock(device)
        times["decode"] = (decoded - start) * 1e3
        if index == 0:  # a node's first frame at this size: cuDNN tuning, compiling
            first_frame_s = framed - start
        times["match"] = output.timings_ms["total"]
        times["post_processing"] = (framed - decoded) * 1e3 - times["match"]
        if neural:
            begin = finished_clock(device)
            _network(estimator, inputs)
            times["network"] = (finished_clock(device) - begin) * 1e3
        if ros is None:
            times["end_to_end"] = (framed - start) * 1e3
        else:
            begin = finished_clock(device)
            ros.point_cloud(output.cloud, left_msg.header, output.has_color)
            times["pack_points"] = (finished_clock(device) - begin) * 1e3
            begin = finished_clock(device)
            result = ros.process(timed_estimator, decoder, left_msg, right_msg, left_info,
                                 right_info, settings, {})
            built = finished_clock(device)
            for message in result.messages.values():
                ros.serialize(message)
            done = finished_clock(device)
            times["messages"] = (built - begin) * 1e3 - timed_estimator.last_ms
            times["serialize"] = (done - built) * 1e3
            times["end_to_end"] = (done - begin) * 1e3
        if index >= warmup:
            for key, value in times.items():
                samples[key].append(value)
    return {**_stages(samples, ros is not None), "first_frame_s": first_frame_s}


def _stages(samples: dict[str, list[float]], with_messages: bool) -> dict[str, Any]:
    """Per-stage medians; the stages not timed alone are differences of medians of one run."""
    median = {k: statistics.median(v) for k, v in samples.items() if v}
    stages: dict[str, float | None] = {stage: median.get(stage) for stage in STAGES}
    if "network" in median:
        stages["to_tensor_and_back"] = median["match"] - median["network"]
    if with_messages:
        # The frame function's time without its estimate: decode, post-processing and messages.
        stages["pack_other_messages"] = (median["messages"] - median["decode"]
                                         - median["post_processing"] - median["pack_points"])
    return {"stages_ms": stages, "pairs_per_s": 1e3 / median["end_to_end"],
            "repeats": len(samples["end_to_end"]), "messages": with_messages}


def bench_node(model: str, sizes: list[tuple[int, int]], max_disparity: int = 192,
               device: str = "auto", precision: str = "auto", warmup: int = 2,
               repeats: int = 10, compile_backends: tuple[str | None, ...] = (None,),
               memory_formats: tuple[str, ...] = ("auto",)) -> dict[str, Any]:
    """Every size, once per entry of `compile_backends` and of `memory_formats`, one pass after
    the other. Compile: None runs the network as the node does by default, "inductor" as its
    compile parameter has it (the first frame at each size then compiles, which `first_frame_s`
    shows), "eager" traces without generating code. Memory format: the networks' weight order
    (neural.MEMORY_FORMATS; the node runs "auto"), for the question whether cuDNN's 3-D
    convolutions run faster channels-last than in torch's order, which the node keeps on CUDA."""
    ros = _ros()
    rows = []
    for backend, memory_format in itertools.product(
            compile_backends, ("auto",) if model == "sgbm" else memory_formats):
        estimator = StereoEstimator(model, None if model == "sgbm" else "shipped", max_disparity,
                                    device, precision, compile_backend=backend,
                                    notify=lambda _text: None, memory_format=memory_format)
        for width, height in sizes:
            row = {"model": model, "width": width, "height": height,
                   "device": str(estimator.device),
                   "precision": getattr(estimator.matcher, "precision", "uint8"),
                   "compile": backend or "no",
                   "memory_format": getattr(estimator.matcher, "memory_format", "-"),
                   **bench_frame(estimator, width, height, warmup, repeats, ros)}
            rows.append(row)
            print(format_row(row), flush=True)
    return {"benchmark": "node", "max_disparity": max_disparity,
            "machine": machine_description(estimator.device),
            "serialization": "rclpy" if ros else "not measured: rclpy is not installed",
            "rows": rows, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


TABLE_HEADER = ("| model | size | device | precision | compile | memory format | "
                + " | ".join(STAGES) + " | pairs/s | first frame s |\n"
                + "|" + "---|" * (len(STAGES) + 8))


def format_row(row: dict[str, Any]) -> str:
    cells = [row["model"], f"{row['width']}x{row['height']}", row["device"], row["precision"],
             row["compile"], row["memory_format"],
             *("-" if row["stages_ms"][s] is None else f"{row['stages_ms'][s]:.1f}"
               for s in STAGES), f"{row['pairs_per_s']:.1f}",
             f"{row['first_frame_s']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([f"Node frame path, ms per stage (median), max disparity "
                      f"{result['max_disparity']}; serialisation: {result['serialization']}",
                      "", TABLE_HEADER, *(format_row(r) for r in result["rows"])]) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_node_arguments(parser, list(SIZES))
    parser.add_argument("--warmup", type=count_at_least(0), default=2)
    parser.add_argument("--repeats", type=count_at_least(1), default=10)
    parser.add_argument("--compile", nargs="+", choices=("no", "inductor", "eager"),
                        default=["no"], help="one pass per entry: no torch.compile, or its "
                        "backend (inductor, as the node's compile parameter, CUDA only; eager "
                        "traces without generating code)")
    add_memory_formats(parser)
    parser.add_argument("--json", type=Path, default=Path("bench_node.json"))
    parser.add_argument("--markdown", type=Path)


def run(args: argparse.Namespace) -> int:
    result = bench_node(args.model, args.sizes, args.max_disparity, args.device, args.precision,
                        args.warmup, args.repeats,
                        tuple(None if name == "no" else name for name in args.compile),
                        tuple(args.memory_formats))
    publish_result(result, format_table(result), args.json, args.markdown)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `node` to a subparsers group (the `bench` kinds of the CLI)."""
    register_kind(subparsers, "node", "message in -> all output messages out, per stage",
                  add_arguments, run)


if __name__ == "__main__":
    sys.exit(module_main("python -m stereo_depth_node.ros.bench_node", __doc__, add_arguments,
                         run, None))
