"""Running a PSMNet-family network on image arrays: normalisation, padding, precision, device."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_model
from .devices import DTYPES, resolve_device, resolve_precision
from .images import unit_scale

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 16


def padding_for(height: int, width: int) -> tuple[int, int]:
    """(top, right) zero padding up to the next multiple of 16, as the public PSMNet test code."""
    return (-height % PAD_MULTIPLE, -width % PAD_MULTIPLE)


class NeuralMatcher:
    """A network on one device; `match` takes RGB arrays and returns disparity and confidence."""

    def __init__(self, model: nn.Module, name: str, device: torch.device,
                 precision: str) -> None:
        """Wrap a built network already on `device` (training validation uses this)."""
        self.model = model
        self.name = name
        self.max_disparity = int(model.max_disparity)
        self.device = device
        self.precision = precision
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, model_name: str, weights: str | os.PathLike | None, max_disparity: int,
             device: str = "auto", precision: str = "auto",
             align_corners: bool = False) -> "NeuralMatcher":
        """Build the network, fill in `weights` and move it to the resolved device."""
        torch_device = resolve_device(device)
        chosen_precision = resolve_precision(precision, torch_device)
        model = load_model(weights, model_name, max_disparity, align_corners)
        return cls(model.to(torch_device).eval(), model_name, torch_device, chosen_precision)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

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
    def match(self, left_rgb: np.ndarray, right_rgb: np.ndarray, scale: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray]:
        """Disparity (float32 px at input resolution) and confidence, both H x W."""
        height, width = left_rgb.shape[:2]
        size = (max(round(height * scale), 1), max(round(width * scale), 1))
        left = self.to_network_input(left_rgb, size)
        right = self.to_network_input(right_rgb, size)
        with self._autocast():
            disparity, confidence = self.model.infer(left, right)
        top = left.shape[-2] - size[0]
        maps = torch.stack([disparity, confidence], dim=1)[:, :, top:, :size[1]].float()
        if size != (height, width):
            maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
            maps[:, 0] *= width / size[1]
        maps = maps[0].cpu().numpy()
        return maps[0], maps[1]
