"""Stereo pairs in, disparity (+ confidence, occlusion) out, for every backend behind one API."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .checkpoints import range_notice, resolve_weights, weights_and_range
from .data.plane import render_plane_pair
from .devices import finished_clock, resolve_device
from .errors import ConfigurationError
from .images import MAX_INPUT_SCALE, SignificantBits, check_pair
from .models import NEURAL_MODELS
from .neural import NeuralMatcher
from .sgbm import SGBMMatcher

BACKENDS = (*sorted(NEURAL_MODELS), "sgbm")
_LOG = logging.getLogger(__name__)


@dataclass
class StereoResult:
    """Maps at the input resolution, for the left view.

    disparity: float32 px (x_left - x_right), NaN where invalid (no match, or failed LR check).
    confidence: float32 in [0, 1]; networks: softmax mass within 2 px of the estimate;
        SGBM: 1 where it found a match, else 0; 0 where the left-right check failed.
    occlusion: bool, True where the left-right check failed; None without `lr_check`.
    timings_ms: wall time per stage.
    input_scale: the one this result was matched at.
    """

    disparity: np.ndarray
    confidence: np.ndarray
    occlusion: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    input_scale: float = 1.0


@dataclass
class StereoMaps:
    """A StereoResult's maps as tensors on the device that matched (the CPU for SGBM), for
    post-processing there before one copy to the host (pipeline.py)."""

    disparity: torch.Tensor
    confidence: torch.Tensor
    occlusion: torch.Tensor | None
    timings_ms: dict[str, float]
    input_scale: float


def left_right_inconsistent(left_disparity: torch.Tensor, right_disparity: torch.Tensor,
                            threshold: float) -> torch.Tensor:
    """True where the right view's disparity at x - d disagrees by more than `threshold` px.

    Pixels whose match falls outside the right image, or whose disparity is NaN in either view,
    are inconsistent too: they have no counterpart to confirm them.
    """
    width = left_disparity.shape[-1]
    columns = torch.arange(width, dtype=torch.float32, device=left_disparity.device)
    target = torch.round(columns - torch.nan_to_num(left_disparity, nan=-1e6)).long()
    inside = (target >= 0) & (target < width)
    matched = right_disparity.gather(-1, target.clamp(0, width - 1))
    agree = (left_disparity - matched).abs() <= threshold
    return ~(inside & agree)


def check_input_scale(scale: float) -> None:
    if not 0.0 < scale <= MAX_INPUT_SCALE:
        raise ConfigurationError(f"input_scale must be in (0, {MAX_INPUT_SCALE:g}], got {scale}")


def check_lr_threshold(threshold: float) -> None:
    # A negative threshold would mark every pixel inconsistent (NaN too: no comparison holds).
    if not threshold >= 0.0:
        raise ConfigurationError(f"lr_threshold must be >= 0, got {threshold}")


class StereoEstimator:
    """One entry point for the neural networks and OpenCV SGBM.

    `weights`: "shipped" (the default: the package's weights for the model), a checkpoint file,
    or None / "none" for the network's initial weights. `max_disparity` 0 (the default) is the
    range those weights were trained with, else 192, as the node's and the command line's 0 is.
    Weights trained with another max disparity run with `max_disparity`; a one-line notice
    naming both goes to `notify` (default: this module's logger at WARNING, which Python prints
    to stderr when logging is not configured).
    Images: uint8 or uint16, mono or RGB (channel order R, G, B as the public PSMNet code reads
    them; RGB beside mono is matched in grey), any size of at least 32 px per side;
    `input_scale` resizes before matching and scales the disparity back to input pixels.
    `max_disparity` counts pixels at the matching resolution, so the range searched in input
    pixels is max_disparity / input_scale.
    `compile_backend`: see NeuralMatcher ("inductor" = torch.compile on CUDA).
    `memory_format`: the networks' weight order (neural.MEMORY_FORMATS; "auto" for the node).
    """

    def __init__(self, model: str = "psmnet_dws", weights: str | os.PathLike | None = "shipped",
                 max_disparity: int = 0, device: str = "auto", precision: str = "auto",
                 input_scale: float = 1.0, lr_check: bool = False, lr_threshold: float = 1.0,
                 align_corners: bool = False,
                 notify: Callable[[str], None] | None = None, *,
                 compile_backend: str | None = None, memory_format: str = "auto") -> None:
        if model not in BACKENDS:
            raise ConfigurationError(
                f"unknown model {model!r}; choose one of {', '.join(BACKENDS)}")
        if weights is not None:  # "shipped", "none" or a file
            weights = resolve_weights(model, weights)
        if model == "sgbm" and weights is not None:
            raise ConfigurationError(f"model 'sgbm' takes no weights, got {str(weights)!r}")
        if not max_disparity:  # the weights' own range
            _, max_disparity = weights_and_range(model, weights or "none", 0)
        check_input_scale(input_scale)
        check_lr_threshold(lr_threshold)
        # The bits of the uint16 images this estimator has seen: one stream's, in the node.
        self.significant_bits = SignificantBits()
        self.input_scale = input_scale
        self.lr_check = lr_check
        self.lr_threshold = lr_threshold
        if model == "sgbm":
            # SGBM runs on the CPU whatever the device, but a device that names nothing, or
            # CUDA where there is none, is still a configuration error, as for the networks.
            resolve_device(device)
            if compile_backend is not None:
                raise ConfigurationError("model 'sgbm' is OpenCV's: there is no network to "
                                         "compile")
            self.matcher: NeuralMatcher | SGBMMatcher = SGBMMatcher(max_disparity)
        else:
            self.matcher = NeuralMatcher.load(model, weights, max_disparity, device, precision,
                                              align_corners, compile_backend, memory_format)
            notice = range_notice(weights, max_disparity)
            if notice:
                (notify or _LOG.warning)(notice)

    @property
    def model_name(self) -> str:
        return self.matcher.name

    @property
    def max_disparity(self) -> int:
        return self.matcher.max_disparity

    @property
    def device(self) -> torch.device:
        """Where matching runs; OpenCV's SGBM always runs on the CPU."""
        return getattr(self.matcher, "device", torch.device("cpu"))

    @torch.inference_mode()
    def estimate_maps(self, left: np.ndarray, right: np.ndarray) -> StereoMaps:
        """`estimate`, with the maps left on the matching device."""
        # Settings are read once: the node changes them from another thread (runtime parameters),
        # and one frame must not mix two scales or thresholds.
        scale, lr_check, lr_threshold = self.input_scale, self.lr_check, self.lr_threshold
        start = time.perf_counter()
        left_rgb, right_rgb = check_pair(left, right, self.significant_bits)
        disparity, confidence = self.matcher.match_maps(left_rgb, right_rgb, scale)
        timings = {"match": (finished_clock(disparity.device) - start) * 1e3}
        occlusion = None
        if lr_check:
            lr_start = time.perf_counter()
            # The right view's disparity is the left-view disparity of the mirrored, swapped pair.
            mirrored = self.matcher.match_maps(np.ascontiguousarray(right_rgb[:, ::-1]),
                                               np.ascontiguousarray(left_rgb[:, ::-1]), scale,
                                               every_column=True)
            occlusion = left_right_inconsistent(disparity, mirrored[0].flip(-1), lr_threshold)
            disparity = disparity.masked_fill(occlusion, float("nan"))
            confidence = confidence.masked_fill(occlusion, 0.0)
            timings["lr_check"] = (finished_clock(disparity.device) - lr_start) * 1e3
        timings["total"] = (time.perf_counter() - start) * 1e3
        return StereoMaps(disparity, confidence, occlusion, timings, scale)

    def warm_up(self, width: int, height: int) -> float:
        """Match one textured pair of this size, as frames of it will be matched (input scale,
        left-right check): torch.compile compiles for that size and cuDNN picks its algorithms,
        which would otherwise hold up the first real frame. Returns the seconds it took."""
        left, right = render_plane_pair(height, width, disparity=8.0, seed=0)
        start = time.perf_counter()
        self.estimate_maps(left, right)
        return time.perf_counter() - start

    def estimate(self, left: np.ndarray, right: np.ndarray) -> StereoResult:
        maps = self.estimate_maps(left, right)
        planes = [maps.disparity, maps.confidence]
        if maps.occlusion is not None:
            planes.append(maps.occlusion.float())
        host = torch.stack(planes).cpu().numpy()
        occlusion = host[2] > 0.5 if maps.occlusion is not None else None
        return StereoResult(host[0], host[1], occlusion, maps.timings_ms, maps.input_scale)
