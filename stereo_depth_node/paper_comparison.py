"""docs/paper_comparison.md from what the device's compare step returns (results.tar): PSMNet and
psmnet_dws trained alike, their size in both counting conventions, their training speed, and
their accuracy with occluded and non-occluded pixels apart, beside the paper's own figures."""
from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from typing import Any

from .errors import ConfigurationError

MODELS = ("psmnet", "psmnet_dws")
# ../shared/PAPER.md: counts verified on the public PSMNet code; the paper's network is "about
# 3.9 M (derived)" in the model, 5,999,392 by the paper's per-call count.
PAPER_PARAMETERS = {"psmnet": ("5,224,768", "8,564,320"),
                    "psmnet_dws": ("about 3.9 M (derived)", "5,999,392 (claimed, -30 %)")}
# The paper's own evaluation: KITTI 2012 3-px error (%) and SceneFlow test loss.
PAPER_RESULTS = {"psmnet": ("1.955", "1.496", "1.0752"),
                 "psmnet_dws": ("1.850", "1.318", "1.0361")}


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """eval.json, both model cards and both loss logs from the compare step's results.tar."""
    names = {"eval": "eval.json", **{f"card_{m}": f"{m}_compare.json" for m in MODELS},
             **{f"log_{m}": f"{m}_log.jsonl" for m in MODELS}}
    if not os.path.isfile(path):
        raise ConfigurationError(f"results archive {os.fspath(path)!r} does not exist (the "
                                 f"results.tar of scripts/device_session.sh compare)")
    try:
        archive = tarfile.open(path)
    except tarfile.ReadError:
        raise ConfigurationError(f"{os.fspath(path)!r} is not a tar archive: not the compare "
                                 f"step's results.tar") from None
    with archive:
        present = set(archive.getnames())
        missing = sorted(set(names.values()) - present)
        if missing:
            raise ConfigurationError(f"{os.fspath(path)!r} lacks {', '.join(missing)}: not the "
                                     f"compare step's results.tar")
        texts = {key: io.TextIOWrapper(archive.extractfile(name)).read()
                 for key, name in names.items()}
    results: dict[str, Any] = {key: json.loads(text) for key, text in texts.items()
                               if not key.startswith("log_")}
    for model in MODELS:
        results[f"log_{model}"] = [json.loads(line) for line in
                                   texts[f"log_{model}"].splitlines() if line.strip()]
    return results


def _method(evaluation: dict[str, Any], model: str) -> dict[str, Any]:
    """The method of `model` in an evaluation ('psmnet (file)' versus 'psmnet_dws (file)')."""
    for name, method in evaluation["methods"].items():
        if name.split(" (")[0] == model:
            return method
    raise ConfigurationError(f"the evaluation has no {model} method: "
                             f"{', '.join(evaluation['methods'])}")


def _without_device_folders(command: str) -> str:
    """The eval command with each weights file by its name: the device's temporary folders are
    gone once the call ends."""
    return re.sub(r"/\S*/([^/\s]+\.pt)\b", r"\1", command)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def sign_test_p(lower: int, higher: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven between `lower` and
    `higher` if either network were as likely as the other to win an image (ties dropped)."""
    n = lower + higher
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(lower, higher) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _image_split(methods: dict[str, dict[str, Any]], region: str) -> tuple[int, int, int]:
    """Images on which psmnet_dws has the lower / higher / equal bad-3 in `region`."""
    lower = higher = equal = 0
    for name, scores in methods["psmnet"]["images"].items():
        # Images without an occlusion mask have no noc/occ regions.
        psmnet = (scores.get(region) or {}).get("bad3")
        dws = (methods["psmnet_dws"]["images"][name].get(region) or {}).get("bad3")
        if psmnet is None or dws is None:
            continue
        psmnet, dws = round(psmnet, 1), round(dws, 1)
        lower += dws < psmnet
        higher += dws > psmnet
        equal += dws == psmnet
    return lower, higher, equal


def _split_text(split: tuple[int, int, int]) -> str:
    lower, higher, equal = split
    return (f"lower on {lower} of {sum(split)} images, higher on {higher}"
            + (f", equal on {equal}" if equal else "")
            + f" (two-sided sign test p = {sign_test_p(lower, higher):.2f})")


def verdict(methods: dict[str, dict[str, Any]]) -> str:
    """Whether psmnet_dws made fewer occluded-pixel errors than psmnet, judged image by image:
    dataset means alone let one image decide a dataset of four."""
    occluded, visible = _image_split(methods, "occ"), _image_split(methods, "noc")
    if sum(occluded) == 0:
        return ("The claim that the separable features cut errors in occluded regions cannot be "
                "judged here: no image had an occlusion mask.")
    lower, higher, _ = occluded
    p = sign_test_p(lower, higher)
    if p < 0.05:
        outcome = "holds here" if lower > higher else "does not hold here: psmnet is better"
    else:
        outcome = ("is not shown here: a split this even is what chance gives on this many "
                   "images")
    return (f"Image by image, psmnet_dws's bad-3 is, on occluded pixels, {_split_text(occluded)}; "
            f"on non-occluded pixels, {_split_text(visible)}. The claim that the separable "
            f"features cut errors in occluded regions {outcome}.")


def comparison_markdown(results: dict[str, Any]) -> str:
    evaluation = results["eval"]
    cards = {model: results[f"card_{model}"] for model in MODELS}
    runs = {model: card["history"][-1] for model, card in cards.items()}
    methods = {model: _method(evaluation, model) for model in MODELS}
    lines = ["# The paper's comparison, reproduced", "",
             "PSMNet and psmnet_dws (the paper's network: depthwise-separable feature extractor) "
             "trained with the same recipe, seed, synthetic data stream and wall-clock budget, "
             "from scratch, by `scripts/device_session.sh compare` (config/train_gpu.yaml), then "
             f"evaluated by "
             f"`{_without_device_folders(evaluation.get('command', 'stereo-depth eval'))}`.", ""]
    lines += ["| | psmnet | psmnet_dws |", "|---|---|---|",
              "| trained on | " + " | ".join(str(runs[m].get("trained_on")) for m in MODELS)
              + " |",
              "| wall time (s) | " + " | ".join(f"{runs[m]['wall_time_s']:.0f}" for m in MODELS)
              + " |",
              "| steps | " + " | ".join(str(runs[m]["steps"]) for m in MODELS) + " |",
              "| samples | " + " | ".join(str(runs[m]["samples_seen"]) for m in MODELS) + " |",
              "| samples/s | " + " | ".join(
                  f"{runs[m]['samples_seen'] / max(runs[m]['wall_time_s'], 1e-9):.2f}"
                  for m in MODELS) + " |",
              "| last logged loss | " + " | ".join(
                  _number(next((e["loss"] for e in reversed(results[f"log_{m}"]) if "loss" in e),
                               None), 3) for m in MODELS) + " |", ""]
    lines += ["## Parameters, in both conventions", "",
              "The paper counts the shared feature extractor once per view (a per-call count); "
              "the model holds it once.", "",
              "| network | in the model (here) | per call (here) | in the model (paper) | "
              "per call (paper) |", "|---|---|---|---|---|"]
    for model in MODELS:
        card = cards[model]
        lines.append(f"| {model} | {card['parameters']:,} | "
                     f"{card['parameters_per_call_paper_convention']:,} | "
                     f"{PAPER_PARAMETERS[model][0]} | {PAPER_PARAMETERS[model][1]} |")
    ratio = (cards["psmnet_dws"]["parameters_per_call_paper_convention"]
             / cards["psmnet"]["parameters_per_call_paper_convention"])
    lines += ["", f"psmnet_dws has {100 * (1 - ratio):.1f} % fewer parameters per call than "
              f"psmnet here (the paper claims 30 %).", ""]
    lines += ["## Accuracy, occluded and non-occluded pixels apart", "",
              "bad-3 in %, EPE in px, each dataset at its full disparity range; '-' where the "
              "dataset has no occlusion mask.", "",
              "| dataset | network | bad-3 all | bad-3 noc | bad-3 occ | EPE all | EPE noc | "
              "EPE occ |", "|---|---|---|---|---|---|---|---|"]
    for dataset in methods["psmnet"]["datasets"]:
        for model in MODELS:
            regions = methods[model]["datasets"][dataset]
            cells = [_number(regions[region].get(metric), 2 if metric == "epe" else 1)
                     for metric in ("bad3", "epe") for region in ("all", "noc", "occ")]
            lines.append(f"| {dataset} ({regions.get('images', '?')}) | {model} | "
                         + " | ".join(cells) + " |")
    lines += ["", "The paper's own figures (its evaluation: 300 epochs of KITTI 2012, 3 of "
              "SceneFlow):", "",
              "| network | KITTI 2012 3-px occ (%) | KITTI 2012 3-px noc (%) | SceneFlow test "
              "loss |", "|---|---|---|---|"]
    lines += [f"| {model} | " + " | ".join(PAPER_RESULTS[model]) + " |" for model in MODELS]
    lines += ["", verdict(methods) + f" One seed and {runs['psmnet_dws']['wall_time_s']:.0f} s "
              f"of training each on synthetic data: far less training than the paper's, on other "
              f"data, so this says how the two compare at this budget, not at convergence.", ""]
    return "\n".join(lines)
