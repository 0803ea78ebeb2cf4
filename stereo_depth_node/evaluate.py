"""`stereo-depth eval`: methods side by side on real pairs with ground truth and synthetic scenes.

Real pairs come from the stereo_eval folder and from dataset folders in their published layouts
(data/datasets.py), read one pair at a time. Every pair is scored at its dataset's full disparity
range (scoring_range): each method searches
that range (rounded up to what it needs) and ground truth at or above it is excluded and counted,
so all methods are scored on the same pixels. SGBM's holes count as errors in bad-N and D1 and its
density is reported (see metrics.py); `sgbm+fill` is SGBM with its holes filled the KITTI
devkit's way. Per dataset, metrics are the mean over its images.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .checkpoints import DEFAULT_MAX_DISPARITY, read_checkpoint, resolve_weights
from .data.datasets import Pair, StereoSample, dataset_pairs, stereo_eval_pairs
from .data.generator import GeneratorConfig, SyntheticStereo
from .errors import InputError
from .estimator import StereoEstimator
from .metrics import disparity_metrics, fill_holes_with_background, scored_truth

SYNTHETIC = "synthetic"  # the dataset name of the synthetic test set's pairs
SYNTHETIC_SEED = 4242
# A second, optional synthetic test set drawn like the scenes the CPU continuation trains on
# (rich scenes, 30 % over a ground plane; config/train_cpu_continue.yaml), without its
# augmentation and with a seed of its own, so that its training can be scored on its own
# distribution beside the plain generator's.
SYNTHETIC_RICH, SYNTHETIC_RICH_SEED, SYNTHETIC_RICH_GROUND_SHARE = "synthetic_rich", 4343, 0.3
SYNTHETIC_SETS = (SYNTHETIC, SYNTHETIC_RICH)
SYNTHETIC_SIZE = (256, 512)
# The generator range the fixed synthetic test set has always been drawn with (its scenes change
# with it), which is also the range of the training recipe in config/train_cpu.yaml.
SYNTHETIC_MAX_DISPARITY = 64
# No pair is searched wider than this: ETH3D's calib.txt gives the image width as ndisp (941 for
# the playground scene), a bound on nothing, at which OpenCV's SGBM cannot run at all.
MAX_RANGE = DEFAULT_MAX_DISPARITY
REGIONS = ("all", "noc", "occ")
FILLED_SGBM = "sgbm+fill"
UPSCALED = "+upscale"
# A network matching a range well below the one it was trained at runs on the pair enlarged so
# that the range fills the trained one, by at most MAX_UPSCALE. Chosen on synthetic scenes before
# any real pair was scored with it (docs/training_notes.md, "Small disparity ranges"): weights
# trained at 64 gained at ranges 16-48 and not at 56, hence the bound at 7/8 of the trained range.
MAX_UPSCALE = 2.0
UPSCALE_BELOW = 7 / 8


@dataclass
class Method:
    """'sgbm', 'sgbm+fill' (SGBM, holes filled by background interpolation), 'psmnet_dws'
    (shipped weights), 'psmnet_dws:none' (initial weights) or 'psmnet:PATH'; a network with
    '+upscale' ('psmnet_dws+upscale[:PATH]') matches small ranges on an enlarged pair
    (upscale_factor)."""

    spec: str

    def __post_init__(self) -> None:
        if self.upscales and (self.model == "sgbm" or self.trained_range is None):
            raise InputError(f"{self.spec!r}: {UPSCALED} needs a network whose weights record "
                             f"the range they were trained at")

    @property
    def fills_holes(self) -> bool:
        return self.spec == FILLED_SGBM

    @property
    def upscales(self) -> bool:
        return self.spec.split(":", 1)[0].endswith(UPSCALED)

    @property
    def model(self) -> str:
        name = self.spec.split(":", 1)[0]
        return "sgbm" if self.fills_holes else name.removesuffix(UPSCALED)

    @property
    def requested_weights(self) -> str:
        return self.spec.split(":", 1)[1] if ":" in self.spec else ""

    @property
    def weights(self) -> Path | None:
        return resolve_weights(self.model, self.requested_weights)

    @property
    def label(self) -> str:
        if self.model == "sgbm":
            return self.spec if self.fills_holes else "sgbm"
        weights = self.weights
        name = self.model + (UPSCALED if self.upscales else "")
        return f"{name} ({weights.name if weights else 'initial weights'})"

    @property
    def path_label(self) -> str:
        """The label with the weights' path as given, for weights that share a file name."""
        if self.weights is None or self.requested_weights in ("", "shipped"):
            return self.label
        return f"{self.model}{UPSCALED if self.upscales else ''} ({self.requested_weights})"

    @cached_property
    def trained_range(self) -> int | None:
        """None for initial weights and for public ones, which record no range."""
        if self.weights is None:
            return None
        trained = read_checkpoint(self.weights)["max_disparity"]
        return None if trained is None else int(trained)

    def input_scale(self, full: int) -> float:
        """The estimator's input_scale for a pair of range `full`."""
        return upscale_factor(full, self.trained_range) if self.upscales else 1.0

    def search_range(self, full: int) -> int:
        """`full` at the matching size, rounded up to what the method takes: SGBM multiples of
        16, networks of 4."""
        step = 16 if self.model == "sgbm" else 4
        return -(-round(full * self.input_scale(full)) // step) * step


def upscale_factor(full: int, trained: int) -> float:
    """Enlarge so that a range of `full` px becomes the `trained` one, by at most MAX_UPSCALE;
    not at all from UPSCALE_BELOW of the trained range up."""
    if full >= UPSCALE_BELOW * trained:
        return 1.0
    return min(trained / full, MAX_UPSCALE)


def method_labels(methods: list[Method]) -> list[str]:
    """Each method's label; weights that share a file name (two runs' last.pt) by their path.
    A method given twice is refused."""
    names = [method.label for method in methods]
    labels = [method.path_label if names.count(name) > 1 else name
              for method, name in zip(methods, names)]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise InputError(f"methods given twice: {', '.join(twice)}")
    return labels


def file_sha256(path: Path | None) -> str | None:
    """Which weights file was scored, whatever its name (None: no file)."""
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def _synthetic_sample(generator: SyntheticStereo, index: int, name: str) -> StereoSample:
    batch = generator.batch(index, 1)
    (left,), (right,) = batch.images_uint8()
    return StereoSample(name, left, right, batch.disparity[0].numpy(), batch.occlusion[0].numpy())


def synthetic_pairs(count: int, max_disparity: int, rich: bool = False) -> list[Pair]:
    """A fixed synthetic test set: its own seed, never drawn for training; plain scenes, or with
    `rich` the continuation's (SYNTHETIC_RICH)."""
    height, width = SYNTHETIC_SIZE
    config = GeneratorConfig(height=height, width=width, max_disparity=max_disparity, rich=rich,
                             ground_share=SYNTHETIC_RICH_GROUND_SHARE if rich else 0.0)
    dataset = SYNTHETIC_RICH if rich else SYNTHETIC
    generator = SyntheticStereo(config, seed=SYNTHETIC_RICH_SEED if rich else SYNTHETIC_SEED)
    return [Pair(f"{dataset}/{index}", max_disparity,
                 partial(_synthetic_sample, generator, index, f"{dataset}/{index}"))
            for index in range(count)]


def scoring_range(pair: Pair) -> int:
    """The disparity range a pair is scored at: its dataset's own, at most MAX_RANGE. Pixels at
    or above it are not scored."""
    if pair.disparity_range is None:
        raise InputError(f"no disparity range known for {pair.name!r}: its folder gives none "
                         f"(Middlebury 2003: info.txt's second value; Middlebury 2014 and "
                         f"ETH3D: calib.txt's ndisp)")
    return min(pair.disparity_range, MAX_RANGE)


def _mean(per_image: list[dict[str, Any]], region: str, key: str) -> float | None:
    values = [m[region][key] for m in per_image if region in m and m[region].get("pixels")]
    return float(np.mean(values)) if values else None


def _summary(per_image: dict[str, dict[str, Any]]) -> dict[str, Any]:
    datasets = {}
    for dataset in sorted({name.split("/")[0] for name in per_image}):
        images = [m for name, m in per_image.items() if name.split("/")[0] == dataset]
        datasets[dataset] = {
            region: {key: _mean(images, region, key)
                     for key in ("epe", "bad1", "bad2", "bad3", "d1", "density")}
            for region in REGIONS}
        datasets[dataset]["images"] = len(images)
        datasets[dataset]["excluded_above_max"] = sum(m["excluded_above_max"] for m in images)
    return datasets


def real_pair_means(method: dict[str, Any]) -> dict[str, float] | None:
    """bad-3 (all pixels) and EPE over the real pairs, i.e. every dataset but the synthetic test
    sets, averaged two ways: over datasets (each counts once) and over images (each pair counts
    once, so Middlebury's four scenes weigh most). None when no real pair was scored."""
    datasets = [d for name, d in method["datasets"].items() if name not in SYNTHETIC_SETS]
    images = [m for name, m in method["images"].items()
              if name.split("/", 1)[0] not in SYNTHETIC_SETS]
    if not datasets:
        return None
    return {"datasets": len(datasets), "images": len(images),
            "bad3_over_datasets": float(np.mean([d["all"]["bad3"] for d in datasets])),
            "bad3_over_images": float(np.mean([m["all"]["bad3"] for m in images])),
            "epe_over_datasets": float(np.mean([d["all"]["epe"] for d in datasets])),
            "epe_over_images": float(np.mean([m["all"]["epe"] for m in images]))}


def evaluate(methods: list[Method], data_root: str | os.PathLike | None, synthetic_count: int,
             device: str = "auto", progress: Callable[[str], None] = print,
             rich_count: int = 0, datasets: Iterable[tuple[str, str | os.PathLike]] = ()
             ) -> dict[str, Any]:
    """Every method on the stereo_eval pairs under `data_root` (None: none), on the pairs of each
    (kind, folder) in `datasets`, on `synthetic_count` plain synthetic scenes and `rich_count`
    rich ones, each pair at its full range; `progress` gets a line per pair and method, and the
    estimators' notices. Pairs are read one at a time, each once for all methods; a pair that
    cannot be read, or has no ground truth below its range, is named under 'unscored' with the
    reason and counts nowhere else."""
    labels = method_labels(methods)
    pairs: list[Pair] = stereo_eval_pairs(data_root) if data_root is not None else []
    for kind, root in datasets:
        pairs += dataset_pairs(kind, root)
    pairs += synthetic_pairs(synthetic_count, SYNTHETIC_MAX_DISPARITY)
    pairs += synthetic_pairs(rich_count, SYNTHETIC_MAX_DISPARITY, rich=True)
    names = [pair.name for pair in pairs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # results are kept by name: one pair would be scored with the other's estimate
        raise InputError(f"pairs with the same name: {', '.join(twice)} (e.g. KITTI frames of "
                         f"one file name in two frame folders); give each a file name of its own")
    ranges = {pair.name: scoring_range(pair) for pair in pairs}
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def matching(method: Method, full: int) -> tuple[str, Path | None, int, float]:
        """What an estimate depends on: sgbm and sgbm+fill, and a network with and without
        +upscale where it does not enlarge, match a pair once."""
        return (method.model, method.weights, method.search_range(full), method.input_scale(full))

    # Every estimator is built before the first pair runs, so bad weights fail at once.
    estimators = {key: StereoEstimator(key[0], key[1], key[2], device, input_scale=key[3],
                                       notify=progress)
                  for key in sorted({matching(method, full) for method in methods
                                     for full in ranges.values()}, key=str)}
    per_image: dict[str, dict[str, Any]] = {label: {} for label in labels}
    unscored: dict[str, str] = {}
    for pair in pairs:
        full = ranges[pair.name]
        # One pair that cannot be scored (a file unreadable or of another size, a wrong range in
        # its calib file) must not end a long evaluation, nor count in the means.
        try:
            sample = pair.load()
            if not scored_truth(sample.disparity, full).any():
                raise InputError(f"no ground truth below its scoring range of {full} px")
        except InputError as exc:
            unscored[pair.name] = str(exc)
            progress(f"{pair.name} not scored: {exc}")
            continue
        estimates: dict[tuple, tuple[np.ndarray, float]] = {}
        for method, label in zip(methods, labels):
            key = matching(method, full)
            if key not in estimates:
                start = time.perf_counter()
                disparity = estimators[key].estimate(sample.left, sample.right).disparity
                estimates[key] = disparity, time.perf_counter() - start
            estimate, seconds = estimates[key]
            if method.fills_holes:
                estimate = fill_holes_with_background(estimate)
            metrics = disparity_metrics(estimate, sample.disparity, sample.occlusion, full)
            _, _, search, scale = key
            metrics.update(seconds=seconds, search_range=search, input_scale=scale)
            per_image[label][pair.name] = metrics
            progress(f"{label:<32} {pair.name:<28} range {search:3d} x{scale:.2f}  "
                     f"EPE {metrics['all']['epe']:6.2f} px  bad-3 {metrics['all']['bad3']:5.1f} %")
    result: dict[str, Any] = {
        "scoring_ranges": {name: full for name, full in ranges.items() if name not in unscored},
        "unscored": unscored, "methods": {}, "created": created}
    for method, label in zip(methods, labels):
        scored = {"weights_sha256": file_sha256(method.weights),
                  "datasets": _summary(per_image[label]), "images": per_image[label]}
        result["methods"][label] = {**scored, "real_pair_means": real_pair_means(scored)}
    return result


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ranges_text(ranges: dict[str, int]) -> str:
    by_dataset: dict[str, list[int]] = {}
    for name, value in ranges.items():
        by_dataset.setdefault(name.split("/")[0], []).append(value)
    return ", ".join(f"{dataset} {min(v)}" + (f"-{max(v)}" if max(v) > min(v) else "")
                     for dataset, v in sorted(by_dataset.items()))


def _excluded_lines(result: dict[str, Any]) -> list[str]:
    """Ground truth at or above a dataset's scoring range counts in no number; say how much (the
    192 px cap leaves out far pixels of full-size Middlebury 2014 scenes, for one)."""
    excluded: dict[str, int] = {}
    for method in result["methods"].values():
        for dataset, d in method["datasets"].items():
            excluded.setdefault(dataset, d.get("excluded_above_max", 0))
    if not any(excluded.values()):
        return []
    return ["", "Ground truth at or above the scoring range, left out of every number: " +
            "; ".join(f"{dataset} {count:,} px" for dataset, count in sorted(excluded.items())
                      if count) + "."]


def format_markdown(result: dict[str, Any]) -> str:
    lines = [f"Each pair is scored at its dataset's full disparity range, which every method "
             f"searches ({_ranges_text(result['scoring_ranges'])} px); per dataset the mean over "
             f"its images; bad-3 / D1 / density in %, EPE in px. SGBM's holes count as errors in "
             f"bad-3 and D1; for EPE they are filled by background interpolation, so sgbm's EPE "
             f"is sgbm+fill's." + (
                 f" A '{UPSCALED}' network matches a pair whose range is below "
                 f"{UPSCALE_BELOW:g} times the one its weights were trained at on the pair "
                 f"enlarged by input_scale = min(trained range / range, {MAX_UPSCALE:g}), "
                 f"searching the range at that size."
                 if any(UPSCALED in label for label in result["methods"]) else ""),
             *(["", "Not scored: " + "; ".join(f"{name} ({why})" for name, why
                                              in result["unscored"].items()) + "."]
               if result.get("unscored") else []),
             *_excluded_lines(result),
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
    means = {label: real_pair_means(method) for label, method in result["methods"].items()}
    if any(means.values()):
        lines += ["", "Over the real pairs: the mean of the dataset means (each dataset counts "
                      "once) and the mean over the images (each pair counts once).", "",
                  "| method | bad-3, over datasets | bad-3, over images | EPE, over datasets | "
                  "EPE, over images |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {m['bad3_over_datasets']:.1f} | {m['bad3_over_images']:.1f} | "
                  f"{m['epe_over_datasets']:.2f} | {m['epe_over_images']:.2f} |"
                  for label, m in means.items() if m]
    return "\n".join(lines)


def write_result(result: dict[str, Any], json_path: str | os.PathLike,
                 markdown_path: str | os.PathLike | None = None) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(format_markdown(result) + "\n")
