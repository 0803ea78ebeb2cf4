"""Parameter counts in two conventions: parameters held, and parameters used per forward call.

The per-call count is what torchsummary-style counters report (and what the paper quotes): a
module run twice, like the siamese feature extractor, is counted once per run.
"""
from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_parameters_per_call(model: nn.Module, height: int = 64, width: int = 64) -> int:
    """Sum the direct parameters of every module each time it runs during one stereo forward."""
    total = 0

    def hook(module: nn.Module, _inputs: object, _output: object) -> None:
        nonlocal total
        total += sum(p.numel() for p in module.parameters(recurse=False))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            image = torch.zeros(1, 3, height, width)
            model(image, image)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
