"""The node's parameters: one table for declaration, documentation, launch files and tests."""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor

from ..images import MAX_INPUT_SCALE, MIN_SIDE_PX

MAX_WARMUP_SIDE = 8192  # a typo such as 64000x480 must not allocate gigabytes at start


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    runtime: bool  # may change while the node runs (parameter callback); else fixed at start
    # Bounds a float parameter declares, so that rqt_reconfigure offers a slider and `ros2 param
    # describe` shows them; rclpy refuses decimal values outside them.
    bounds: tuple[float, float] | None = None

    @property
    def is_float(self) -> bool:
        return isinstance(self.default, float)


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("model", "psmnet_dws", "psmnet_dws, psmnet or sgbm", False),
    ParameterSpec("weights", "", "checkpoint file; empty = the weights shipped for the model",
                  False),
    ParameterSpec("device", "auto", "auto, cpu, cuda or cuda:N", False),
    ParameterSpec("precision", "auto", "auto, fp32, fp16 or bf16; auto = bf16 on CUDA (fp16 "
                  "where the card has no bf16), fp32 on the CPU (autocast on CUDA; fp32 without "
                  "TF32)", False),
    ParameterSpec("compile", False, "run the network through torch.compile (CUDA only): about "
                  "3x faster on an H200, after a first frame per image size that takes about 75 "
                  "s", False),
    ParameterSpec("warmup_size", "", "WIDTHxHEIGHT of the coming images: one frame of that "
                  "size is matched before the node reports ready, so that compiling and cuDNN's "
                  "tuning do not hold up the first real frame; sides 32 to 8192 px; empty = "
                  "none", False),
    ParameterSpec("max_disparity", 0, "disparity search range in px; 0 = the range recorded "
                  "in the weights (192 for sgbm, initial weights and weights that record none)",
                  False),
    ParameterSpec("image_transport", "raw", "raw or compressed: images as sensor_msgs/Image, or "
                  "as sensor_msgs/CompressedImage (JPEG, PNG) on '<image topic>/compressed'",
                  False),
    ParameterSpec("rectify", False, "take raw images (left/image_raw, right/image_raw) and "
                  "rectify them from their camera_info (D, K, R, P)", False),
    ParameterSpec("input_scale", 1.0, "resize factor in (0, 4] before matching; max_disparity "
                  "counts pixels at the matching size", True, (0.0, MAX_INPUT_SCALE)),
    ParameterSpec("approximate_sync", False, "pair messages whose stamps differ by less "
                  "than sync_tolerance instead of exactly equal stamps", False),
    ParameterSpec("sync_tolerance", 0.01, "seconds, for approximate_sync", True),
    ParameterSpec("queue_size", 5, "messages kept per input while waiting for partners", False),
    ParameterSpec("min_depth", 0.0, "metres; nearer points become NaN", True),
    ParameterSpec("max_depth", 100.0, "metres; farther points become NaN", True),
    ParameterSpec("confidence_threshold", 0.0, "pixels with lower confidence become NaN", True,
                  (0.0, 1.0)),
    ParameterSpec("lr_check", False, "mask pixels that fail the left-right consistency check",
                  True),
    ParameterSpec("lr_threshold", 1.0, "px, left-right disagreement that marks an occlusion",
                  True),
    ParameterSpec("use_color", True, "add the left image's colour to points2 (field rgb)", True),
    ParameterSpec("publish_disparity", True, "publish disparity", True),
    ParameterSpec("publish_depth", True, "publish depth and depth/camera_info", True),
    ParameterSpec("publish_points", True, "publish points2", True),
    ParameterSpec("publish_confidence", True, "publish confidence", True),
    ParameterSpec("summary_period", 10.0, "seconds between summary log lines (0 = off)", False),
    ParameterSpec("publish_thread", False, "build and publish a finished frame's messages in a "
                  "thread of their own while the next set is matched (false: one thread matches "
                  "and publishes in turn)", False),
)

BY_NAME = {spec.name: spec for spec in PARAMETERS}

# stereo_image_proc's parameters that a params file carried over to this node may still hold,
# and what does their job here (or that nothing does).
STEREO_IMAGE_PROC_EQUIVALENTS = {
    "disparity_range": "max_disparity does its job here",
    "min_disparity": "the search here always starts at disparity 0",
    "approximate_sync_tolerance_seconds": "sync_tolerance does its job here",
    "disp12_max_diff": "lr_check with lr_threshold does its job here",
    "stereo_algorithm": "model does its job here",
    "use_system_default_qos": "the qos_overrides parameters do its job here",
    **{name: "a block-matching setting, which the networks and this node's sgbm do not take"
       for name in ("P1", "P2", "uniqueness_ratio", "speckle_size", "speckle_range",
                    "prefilter_size", "prefilter_cap", "texture_threshold",
                    "correlation_window_size", "full_dp", "sgbm_mode")},
}
QOS_PREFIX = "qos_overrides."


def _qos_hint(name: str, known: set[str]) -> str:
    """Why a qos_overrides parameter is not one the node has: a policy rclpy does not let be
    overridden there, or a publisher or subscription the node does not have (with the nearest
    one it has)."""
    # qos_overrides.<topic>.<publisher|subscription>.<policy>; topic names hold no dots.
    endpoint = name[len(QOS_PREFIX):].rpartition(".")[0]
    policies = sorted(k.rpartition(".")[2] for k in known
                      if k.startswith(f"{QOS_PREFIX}{endpoint}."))
    if policies:
        return f"{name} (this topic's overridable policies are {', '.join(policies)})"
    endpoints = sorted({k[len(QOS_PREFIX):].rpartition(".")[0] for k in known
                        if k.startswith(QOS_PREFIX)})
    close = difflib.get_close_matches(endpoint, endpoints, n=1, cutoff=0.8)
    return (f"{name} (this node has no such publisher or subscription; did you mean "
            f"{close[0]}?)" if close else
            f"{name} (this node has no such publisher or subscription taking QoS overrides)")


def unknown_parameters_text(given: Iterable[str], declared: Iterable[str]) -> str | None:
    """The warning for parameters given to the node that it has not declared, or None. rclpy
    ignores them without a word, so a misspelt name in a params file would leave its default in
    force unnoticed; a warning, not a refusal, because one file often serves several nodes."""
    known = set(declared)
    unknown = sorted(set(given) - known)
    if not unknown:
        return None
    plain = sorted(k for k in known if not k.startswith(QOS_PREFIX))
    shown = []
    for name in unknown:
        if name in STEREO_IMAGE_PROC_EQUIVALENTS:
            shown.append(f"{name} (stereo_image_proc's: {STEREO_IMAGE_PROC_EQUIVALENTS[name]})")
        elif name.startswith(QOS_PREFIX):
            shown.append(_qos_hint(name, known))
        else:
            close = difflib.get_close_matches(name, plain, n=1, cutoff=0.8)
            shown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return (f"ignoring parameter{'s' if len(unknown) > 1 else ''} this node does not have: "
            f"{', '.join(shown)}; `stereo_depth_node --help` lists its parameters")


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """How the node declares `spec`. Fixed parameters are read-only, so `ros2 param set` refuses
    them and rqt_reconfigure greys them out; float parameters are dynamically typed (see
    parameter_value)."""
    bounds = ([FloatingPointRange(from_value=spec.bounds[0], to_value=spec.bounds[1])]
              if spec.bounds else [])
    return ParameterDescriptor(
        description=spec.description + ("" if spec.runtime else " (fixed at start)"),
        read_only=not spec.runtime, dynamic_typing=spec.is_float, floating_point_range=bounds)


def warmup_size(text: str) -> tuple[int, int] | None:
    """(width, height) of the warmup_size parameter, None when it is empty."""
    if not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"warmup_size must be WIDTHxHEIGHT (e.g. 640x480) or empty, got "
                         f"{text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if min(width, height) < MIN_SIDE_PX or max(width, height) > MAX_WARMUP_SIDE:
        raise ValueError(f"warmup_size sides must be {MIN_SIDE_PX} to {MAX_WARMUP_SIDE} px, "
                         f"got {width}x{height}")
    return width, height


def parameter_value(spec: ParameterSpec, value: Any) -> Any:
    """The value as the node uses it. A float parameter also takes a whole number (YAML
    `max_depth: 10`, `-p summary_period:=0`, `ros2 param set ... 10`), which rclpy's static typing
    would refuse with a traceback at start; so such parameters are declared dynamically typed and
    anything that is not a number is refused here, naming the parameter."""
    if not spec.is_float:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{spec.name} must be a number (e.g. 10 or 10.0), got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{spec.name} must be a number, got nan")
    return float(value)


def usage() -> str:
    """`stereo_depth_node --help`: how to start the node and what each parameter does."""
    def shown(value: Any) -> str:  # as written after -p NAME:= or in a params file
        return str(value).lower() if isinstance(value, bool) else repr(value)

    width = max(len(f"{spec.name} = {shown(spec.default)}") for spec in PARAMETERS)
    lines = [
        "usage: stereo_depth_node [--ros-args [-p NAME:=VALUE]... [--params-file FILE] "
        "[-r FROM:=TO]...]",
        "   or: ros2 launch stereo_depth_node stereo_depth.launch.py [NAME:=VALUE]...",
        "",
        "Subscribes to left/image_rect, right/image_rect, left/camera_info and right/camera_info;",
        "publishes disparity, depth, depth/camera_info, points2 and confidence (README, "
        "\"Topics\").",
        "",
        "parameters (NAME = default; those marked * may change while the node runs, e.g. with "
        "ros2 param set):",
    ]
    for spec in PARAMETERS:
        setting = f"{spec.name} = {shown(spec.default)}"
        lines.append(f"  {'*' if spec.runtime else ' '} {setting:<{width}}  {spec.description}")
    return "\n".join(lines)

