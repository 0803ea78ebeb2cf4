"""`stereo-depth demo`: the node in its own process, the demo sequence through real DDS, every
output received, and demo_output/ with figures, a coloured PLY cloud and a report."""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy

from ..demo import DEMO_MAX_DISPARITY, DemoFrame, demo_sequence
from ..metrics import disparity_metrics
from ..ply import write_ply
from ..visualize import depth_figure, disparity_figure
from .bag import TYPESTORE  # noqa: F401  (fails early when rosbags is missing)
from .client import OUTPUT_TYPES, StereoClient
from .conversions import float_image_to_array, point_cloud_to_array
from .messages import stereo_messages
from .node_process import (NodeProcess, reliable_inputs, tool_arguments,
                           use_local_shared_memory)
from .teardown import bounded_teardown

START_NS = 1_700_000_000 * 10**9


def _write_figures(out: Path, frame: DemoFrame, outputs: dict[str, Any]) -> None:
    disparity = float_image_to_array(outputs["disparity"].image) + frame.camera.disparity_offset
    depth = float_image_to_array(outputs["depth"])
    cv2.imwrite(os.fspath(out / f"{frame.name}_disparity.png"),
                disparity_figure(disparity, DEMO_MAX_DISPARITY))
    cv2.imwrite(os.fspath(out / f"{frame.name}_depth.png"), depth_figure(depth))
    points = point_cloud_to_array(outputs["points2"])
    rgb = points[..., 3].copy().view(np.uint32)
    colors = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], -1).astype(np.uint8)
    write_ply(out / f"{frame.name}_cloud.ply", points[..., :3], colors)


def _run_model(model: str, frames: list[DemoFrame], out: Path, device: str) -> dict[str, Any]:
    namespace = f"/demo_{model}"
    out.mkdir(parents=True, exist_ok=True)
    # Each frame is sent once, so the node's inputs are reliable.
    process = NodeProcess(namespace, {"model": model, "max_disparity": DEMO_MAX_DISPARITY,
                                      "device": device, "summary_period": 0.0,
                                      **reliable_inputs(namespace)},
                          out / "node.log")
    client = StereoClient(namespace, f"demo_client_{model}")
    try:
        client.connect(stereo_messages(frames[-1].left, frames[-1].right, frames[-1].camera,
                                       START_NS - 10**9, "left_camera_optical_frame"),
                       timeout=120, resend_s=5.0)
        latencies, per_frame = [], {}
        start = time.monotonic()
        for index, frame in enumerate(frames):
            messages = stereo_messages(frame.left, frame.right, frame.camera,
                                       START_NS + index * 100_000_000,
                                       "left_camera_optical_frame")
            sent = time.monotonic()
            outputs = client.send_and_wait(messages, tuple(OUTPUT_TYPES), timeout=300)
            stamp = messages["left/image_rect"].header.stamp
            latencies.append((client.arrival("disparity", stamp)[0] - sent) * 1e3)
            shift = (float_image_to_array(outputs["disparity"].image)
                     + frame.camera.disparity_offset)
            per_frame[frame.name] = disparity_metrics(shift, frame.disparity, frame.occlusion,
                                                      DEMO_MAX_DISPARITY)
            if index == 0:
                _write_figures(out, frame, outputs)
        elapsed = time.monotonic() - start
    finally:
        client.close()
        exit_code = process.stop()
    synthetic = [m for name, m in per_frame.items() if name.startswith("synthetic")]
    mean = lambda region, key: float(np.mean([m[region][key] for m in synthetic  # noqa: E731
                                              if m[region]["pixels"]]))
    return {"frames": len(frames), "rate_hz": len(frames) / elapsed,
            "median_latency_ms": statistics.median(latencies), "node_exit_code": exit_code,
            "motorcycle": per_frame["motorcycle"]["all"],
            "synthetic_mean": {region: {key: mean(region, key) for key in ("epe", "bad3")}
                               for region in ("all", "noc", "occ")},
            "per_frame": per_frame}


def run_demo(out_dir: str | os.PathLike, models: list[str], device: str = "auto"
             ) -> dict[str, Any]:
    out = Path(out_dir)
    frames = demo_sequence()
    report: dict[str, Any] = {
        "sequence": f"Middlebury 2014 motorcycle (741x500, real calibration) + "
                    f"{len(frames) - 1} rendered synthetic scenes (320x240)",
        "max_disparity": DEMO_MAX_DISPARITY, "results": {}}
    use_local_shared_memory()
    rclpy.init(args=tool_arguments())
    try:
        for model in models:
            report["results"][model] = _run_model(model, frames, out / model, device)
    finally:
        with bounded_teardown():
            rclpy.try_shutdown()
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_report(report) + "\n")
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['sequence']}; max disparity {report['max_disparity']}; "
             f"through the node over DDS (localhost)", "",
             "| model | rate Hz | median latency ms | motorcycle EPE px | motorcycle bad-3 % | "
             "motorcycle density % | synthetic EPE noc / occ px | synthetic bad-3 noc / occ % |",
             "|---|---|---|---|---|---|---|---|"]
    for model, r in report["results"].items():
        m, s = r["motorcycle"], r["synthetic_mean"]
        lines.append(f"| {model} | {r['rate_hz']:.2f} | {r['median_latency_ms']:.0f} | "
                     f"{m['epe']:.2f} | {m['bad3']:.1f} | {m['density']:.1f} | "
                     f"{s['noc']['epe']:.2f} / {s['occ']['epe']:.2f} | "
                     f"{s['noc']['bad3']:.1f} / {s['occ']['bad3']:.1f} |")
    return "\n".join(lines)
