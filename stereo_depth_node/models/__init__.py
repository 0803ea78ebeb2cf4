"""Stereo networks and their registry: `build_model(name, max_disparity)`."""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from ..errors import ConfigurationError
from .psmnet import PSMNet

NEURAL_MODELS: dict[str, Callable[..., nn.Module]] = {
    "psmnet": partial(PSMNet, separable=False),
    "psmnet_dws": partial(PSMNet, separable=True),
}


def build_model(name: str, max_disparity: int = 192, align_corners: bool = False) -> nn.Module:
    """A freshly initialised network of the registered architecture `name`."""
    try:
        factory = NEURAL_MODELS[name]
    except KeyError:
        raise ConfigurationError(f"unknown model {name!r}; known networks: "
                         f"{', '.join(sorted(NEURAL_MODELS))}") from None
    return factory(max_disparity=max_disparity, align_corners=align_corners)


__all__ = ["NEURAL_MODELS", "PSMNet", "build_model"]
