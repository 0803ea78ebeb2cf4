"""ONNX export of a network at a fixed input size, with a parity check against onnxruntime."""
from __future__ import annotations

import importlib
import os
import warnings

import numpy as np
import torch
from torch import nn

from .errors import ConfigurationError
from .neural import padding_for

OPSET = 17


def require_packages(parity: bool) -> None:
    """Refuse, before any work, an export without onnx (torch's exporter writes through it) or a
    parity check without onnxruntime: both come with the dev extra, not the base install."""
    needed = {"onnx": "export", **({"onnxruntime": "--check"} if parity else {})}
    for module, purpose in needed.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            # A broken install (built against another NumPy, say) is present, not missing.
            missing = isinstance(exc, ModuleNotFoundError) and exc.name == module
            first_line = str(exc).partition("\n")[0]
            state = "is not installed" if missing else f"cannot be imported ({first_line})"
            raise ConfigurationError(f"{purpose} needs the {module} package, which {state}: pip "
                                     f"install {module}, or the dev extra (pip install '.[dev]' "
                                     f"in the checkout)") from exc


class _InferenceGraph(nn.Module):
    """Normalised, 16-px padded left/right (1 x 3 x H x W) -> disparity, confidence (1 x H x W)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.infer(left, right)


def export_onnx(model: nn.Module, path: str | os.PathLike, height: int, width: int
                ) -> tuple[int, int]:
    """Write `model` as ONNX for images of height x width; returns the padded input size."""
    top, right = padding_for(height, width)
    size = (height + top, width + right)
    graph = _InferenceGraph(model.cpu().eval()).eval()
    example = torch.zeros(1, 3, *size)
    # The TorchScript exporter handles the size-dependent pooling windows as constants, which is
    # what a fixed-size engine wants; its deprecation and tracer notices are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example, example), os.fspath(path), dynamo=False,
                          input_names=["left", "right"],
                          output_names=["disparity", "confidence"], opset_version=OPSET)
    return size


def onnx_parity(model: nn.Module, path: str | os.PathLike, seed: int = 0) -> dict[str, float]:
    """Max absolute difference between torch and onnxruntime on one random normalised input."""
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    generator = torch.Generator().manual_seed(seed)
    left, right = (torch.randn(*shape, generator=generator) for _ in range(2))
    with torch.inference_mode():
        expected = [t.numpy() for t in model.cpu().eval().infer(left, right)]
    actual = session.run(None, {"left": left.numpy(), "right": right.numpy()})
    return {name: float(np.max(np.abs(a - e)))
            for name, a, e in zip(("disparity", "confidence"), actual, expected)}
