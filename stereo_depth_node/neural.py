"""Running a PSMNet-family network on image arrays: normalisation, padding, precision, device."""
from __future__ import annotations

import contextlib
import itertools
import os
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_model
from .devices import DTYPES, resolve_device, resolve_precision
from .errors import ConfigurationError
from .images import matching_size, unit_scale

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 16
# The order of the weights in memory: "auto" is channels-last on the CPU, where oneDNN's
# convolutions then run without reordering each activation (psmnet_dws on a 2-core EPYC:
# 1.13-1.24x faster, the same memory per frame; bench/estimator_cpu.json), and torch's default
# elsewhere, because no GPU has measured it yet.
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


def padding_for(height: int, width: int) -> tuple[int, int]:
    """(top, right) zero padding up to the next multiple of 16, as the public PSMNet test code."""
    return (-height % PAD_MULTIPLE, -width % PAD_MULTIPLE)


@contextlib.contextmanager
def _ieee_fp32() -> Iterator[None]:
    """cuDNN runs fp32 convolutions as TF32 unless told not to: on an H200 that put the disparity
    0.13 px away from the CPU's on teddy, against 0.0002 px without it (docs/device_log.md).
    'fp32' promises fp32; the flag is process-wide, so it is restored afterwards."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def check_memory_format(memory_format: str) -> None:
    if memory_format not in MEMORY_FORMATS:
        raise ConfigurationError(f"memory_format {memory_format!r} is not one of "
                                 f"{', '.join(MEMORY_FORMATS)}")


def resolve_memory_format(memory_format: str, device: torch.device) -> str:
    check_memory_format(memory_format)
    if memory_format == "auto":
        return "channels_last" if device.type == "cpu" else "contiguous"
    return memory_format


def use_channels_last(model: nn.Module) -> None:
    """Put the 2-D and 3-D convolutions' weights in channels-last order. A convolution's output
    follows its weight's order, so the activations follow without converting the inputs."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        elif tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)


def check_compile_backend(backend: str | None, device: torch.device) -> None:
    """Code generation (inductor) only where it was measured: on CUDA it made the network about
    3x faster (docs/benchmarks.md); on the CPU it needs a C++ compiler at run time."""
    if backend is None or backend == "eager":
        return
    if backend != "inductor":
        raise ConfigurationError(f"compile backend {backend!r} is not one of inductor, eager")
    if device.type != "cuda":
        raise ConfigurationError(f"compile needs a CUDA device; the network runs on {device} "
                                 f"(set compile to false, or device to cuda)")


class NeuralMatcher:
    """A network on one device; `match` takes RGB arrays and returns disparity and confidence.

    `compile_backend`: None runs the network as it is; "inductor" runs it through torch.compile
    (CUDA only: the first call at each input size compiles, about 75 s on an H200); "eager"
    traces it without generating code, which checks the traced path cheaply on a CPU.
    `memory_format`: the order the network's weights are in (MEMORY_FORMATS).
    """

    def __init__(self, model: nn.Module, name: str, device: torch.device,
                 precision: str, compile_backend: str | None = None,
                 memory_format: str = "contiguous") -> None:
        """Wrap a built network already on `device` (training validation uses this)."""
        check_compile_backend(compile_backend, device)
        self.model = model
        self.memory_format = memory_format
        self.name = name
        self.max_disparity = int(model.max_disparity)
        self.device = device
        self.precision = precision
        self.compile_backend = compile_backend
        self._forward = (model.infer if compile_backend is None
                         else torch.compile(model.infer, backend=compile_backend, dynamic=False))
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, model_name: str, weights: str | os.PathLike | None, max_disparity: int,
             device: str = "auto", precision: str = "auto",
             align_corners: bool = False, compile_backend: str | None = None,
             memory_format: str = "auto") -> "NeuralMatcher":
        """Build the network, fill in `weights` and move it to the resolved device."""
        torch_device = resolve_device(device)
        chosen_precision = resolve_precision(precision, torch_device)
        check_compile_backend(compile_backend, torch_device)  # before the weights are read
        chosen_format = resolve_memory_format(memory_format, torch_device)
        model = load_model(weights, model_name, max_disparity, align_corners)
        model = model.to(torch_device).eval()
        if chosen_format == "channels_last":
            use_channels_last(model)
        return cls(model, model_name, torch_device, chosen_precision, compile_backend,
                   chosen_format)

    def precision_context(self) -> contextlib.AbstractContextManager:
        """Autocast to bf16/fp16, or fp32 without TF32 on CUDA, around a call of the network."""
        if self.precision != "fp32":
            return torch.autocast(self.device.type, dtype=DTYPES[self.precision])
        return _ieee_fp32() if self.device.type == "cuda" else contextlib.nullcontext()

    def to_network_input(self, image_rgb: np.ndarray, size: tuple[int, int] | None = None
                         ) -> torch.Tensor:
        """1 x 3 x H' x W' normalised tensor, resized to `size` (H, W) and padded to 16 px."""
        scale = unit_scale(image_rgb.dtype)
        tensor = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self.device)
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).float().div_(scale)
        if size is not None and size != tuple(tensor.shape[-2:]):
            tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False,
                                   antialias=size[0] < tensor.shape[-2])
        tensor = (tensor - self._mean) / self._std
        top, right = padding_for(*tensor.shape[-2:])
        return F.pad(tensor, (0, right, top, 0))

    @torch.inference_mode()
    def infer(self, left: torch.Tensor, right: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on padded network inputs, at this matcher's precision: disparity and
        confidence, N x H' x W'."""
        with self.precision_context():
            return self._forward(left, right)

    @torch.inference_mode()
    def match_maps(self, left_rgb: np.ndarray, right_rgb: np.ndarray, scale: float = 1.0,
                   every_column: bool = False) -> torch.Tensor:
        """2 x H x W float32 on this matcher's device: disparity (px at input resolution) and
        confidence. Left there, so that the frame's post-processing runs there too.
        `every_column` is SGBM's option (sgbm.py); a network matches every column either way,
        its cost volume being zero where the search leaves the right image."""
        height, width = left_rgb.shape[:2]
        size = matching_size(height, width, scale)
        left = self.to_network_input(left_rgb, size)
        right = self.to_network_input(right_rgb, size)
        disparity, confidence = self.infer(left, right)
        top = left.shape[-2] - size[0]
        maps = torch.stack([disparity, confidence], dim=1)[:, :, top:, :size[1]].float()
        if size != (height, width):
            maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
            maps[:, 0] *= width / size[1]
        return maps[0]

    def match(self, left_rgb: np.ndarray, right_rgb: np.ndarray, scale: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray]:
        """Disparity (float32 px at input resolution) and confidence, both H x W, on the host."""
        maps = self.match_maps(left_rgb, right_rgb, scale).cpu().numpy()
        return maps[0], maps[1]
