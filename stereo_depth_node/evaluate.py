"""`stereo-depth eval`: methods side by side on real pairs with ground truth and synthetic scenes.

Every method is scored on the same pixels: ground truth below the smallest max disparity among the
methods (the rest is excluded and counted). SGBM's holes count as errors in bad-N and D1 and its
density is reported (see metrics.py). Per dataset, metrics are the mean over its images.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .checkpoints import DEFAULT_MAX_DISPARITY, read_checkpoint, resolve_weights
from .data.datasets import StereoSample, stereo_eval
from .data.generator import GeneratorConfig, SyntheticStereo
from .estimator import StereoEstimator
from .metrics import disparity_metrics

SYNTHETIC_SEED = 4242
SYNTHETIC_SIZE = (256, 512)
REGIONS = ("all", "noc", "occ")


@dataclass
class Method:
    """'sgbm', 'psmnet_dws' (shipped weights), 'psmnet_dws:none' (initial) or 'psmnet:PATH'."""

    spec: str

    @property
    def model(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def weights(self) -> Path | None:
        requested = self.spec.split(":", 1)[1] if ":" in self.spec else ""
        return resolve_weights(self.model, requested)

    @property
    def label(self) -> str:
        if self.model == "sgbm":
            return "sgbm"
        weights = self.weights
        return f"{self.model} ({weights.name if weights else 'initial weights'})"


def synthetic_test_set(count: int, max_disparity: int) -> Iterable[StereoSample]:
    """A fixed synthetic test set: its own seed, never drawn for training."""
    height, width = SYNTHETIC_SIZE
    generator = SyntheticStereo(GeneratorConfig(height=height, width=width,
                                                max_disparity=max_disparity),
                                seed=SYNTHETIC_SEED)
    for index in range(count):
        batch = generator.batch(index, 1)
        (left,), (right,) = batch.images_uint8()
        yield StereoSample(f"synthetic/{index}", left, right, batch.disparity[0].numpy(),
                           batch.occlusion[0].numpy())


def _mean(per_image: list[dict[str, Any]], region: str, key: str) -> float | None:
    values = [m[region][key] for m in per_image if region in m and m[region].get("pixels")]
    return float(np.mean(values)) if values else None


def evaluate(methods: list[Method], data_root: str | os.PathLike | None, synthetic_count: int,
             device: str = "auto", progress=print) -> dict[str, Any]:
    # Methods whose weights record no max disparity (SGBM, public or initial weights) search the
    # same range as the trained ones, so that all are compared on one search range.
    recorded = {m.label: read_checkpoint(m.weights)["max_disparity"]
                for m in methods if m.weights is not None}
    known = [int(v) for v in recorded.values() if v is not None]
    common = min(known) if known else DEFAULT_MAX_DISPARITY
    estimators = {}
    for method in methods:
        max_disparity = int(recorded.get(method.label) or common)
        if method.model == "sgbm":
            max_disparity = -(-max_disparity // 16) * 16
        estimators[method.label] = StereoEstimator(method.model, method.weights, max_disparity,
                                                   device)
    scoring_range = min(e.max_disparity for e in estimators.values())
    samples: list[StereoSample] = []
    if data_root is not None:
        samples += list(stereo_eval(data_root))
    samples += list(synthetic_test_set(synthetic_count, scoring_range))
    result: dict[str, Any] = {"scored_below_disparity": scoring_range, "methods": {},
                              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for label, estimator in estimators.items():
        per_image = {}
        for sample in samples:
            start = time.perf_counter()
            estimate = estimator.estimate(sample.left, sample.right).disparity
            metrics = disparity_metrics(estimate, sample.disparity, sample.occlusion,
                                        scoring_range)
            metrics["seconds"] = time.perf_counter() - start
            per_image[sample.name] = metrics
            progress(f"{label:<32} {sample.name:<28} EPE {metrics['all']['epe']:6.2f} px  "
                     f"bad-3 {metrics['all']['bad3']:5.1f} %")
        datasets = {}
        for dataset in sorted({name.split("/")[0] for name in per_image}):
            images = [m for name, m in per_image.items() if name.split("/")[0] == dataset]
            datasets[dataset] = {
                region: {key: _mean(images, region, key)
                         for key in ("epe", "bad1", "bad2", "bad3", "d1", "density")}
                for region in REGIONS}
            datasets[dataset]["images"] = len(images)
            datasets[dataset]["excluded_above_max"] = sum(m["excluded_above_max"]
                                                          for m in images)
        result["methods"][label] = {"max_disparity": estimator.max_disparity,
                                    "datasets": datasets, "images": per_image}
    return result


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_markdown(result: dict[str, Any]) -> str:
    lines = [f"Scored on ground truth below {result['scored_below_disparity']} px; "
             f"per dataset the mean over its images; bad-3 / D1 / density in %, EPE in px "
             f"(holes filled by background interpolation for EPE, counted as errors otherwise).",
             "", "| dataset | method | EPE | bad-3 all | bad-3 noc | bad-3 occ | D1 | density |",
             "|---|---|---|---|---|---|---|---|"]
    datasets = sorted({d for m in result["methods"].values() for d in m["datasets"]})
    for dataset in datasets:
        for label, method in result["methods"].items():
            d = method["datasets"].get(dataset)
            if d is None:
                continue
            lines.append(
                f"| {dataset} ({d['images']}) | {label} | {_cell(d['all']['epe'])} | "
                f"{_cell(d['all']['bad3'], 1)} | {_cell(d['noc']['bad3'], 1)} | "
                f"{_cell(d['occ']['bad3'], 1)} | {_cell(d['all']['d1'], 1)} | "
                f"{_cell(d['all']['density'], 1)} |")
    return "\n".join(lines)


def write_result(result: dict[str, Any], json_path: str | os.PathLike,
                 markdown_path: str | os.PathLike | None = None) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(format_markdown(result) + "\n")
