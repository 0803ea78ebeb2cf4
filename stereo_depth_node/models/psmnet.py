"""PSMNet (stacked hourglass) and the paper's depthwise-separable variant."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigurationError
from .blocks import FeatureExtraction, Hourglass, classifier, convbn_3d, init_weights

# Probability mass within this many pixels of the soft-argmin estimate is the confidence.
CONFIDENCE_RADIUS_PX = 2.0


def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, levels: int) -> torch.Tensor:
    """B x 2C x levels x H x W; level i pairs left x with right x - i, zero where x < i."""
    width = left.shape[-1]
    pair = torch.cat([left, right], dim=1)
    slices = [pair]
    for i in range(1, levels):
        if i >= width:
            slices.append(torch.zeros_like(pair))
        else:
            shifted = torch.cat([left[..., i:], right[..., :width - i]], dim=1)
            slices.append(F.pad(shifted, (i, 0)))
    return torch.stack(slices, dim=2)


def soft_argmin(cost: torch.Tensor, max_disparity: int, size: tuple[int, int],
                align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Upsample a B x 1 x D/4 x h x w cost to full size; return (disparity B x H x W, softmax)."""
    levels = cost.shape[2] * 4
    cost = F.interpolate(cost, size=(levels, *size), mode="trilinear",
                         align_corners=align_corners)
    prob = F.softmax(cost.squeeze(1)[:, :max_disparity].float(), dim=1)
    candidates = torch.arange(max_disparity, dtype=prob.dtype, device=prob.device)
    disparity = (prob * candidates.view(1, -1, 1, 1)).sum(dim=1)
    return disparity, prob


def confidence_from_probability(prob: torch.Tensor, disparity: torch.Tensor,
                                radius: float = CONFIDENCE_RADIUS_PX) -> torch.Tensor:
    """Probability that the true disparity lies within `radius` px of the estimate, in [0, 1]."""
    candidates = torch.arange(prob.shape[1], dtype=prob.dtype, device=prob.device)
    near = (candidates.view(1, -1, 1, 1) - disparity.unsqueeze(1)).abs() <= radius
    return (prob * near).sum(dim=1).clamp(0.0, 1.0)


class PSMNet(nn.Module):
    """Stacked-hourglass PSMNet; `separable=True` gives the paper's reduced-parameter network.

    Any max disparity that is a multiple of 4 works: the cost volume is built for the next multiple
    of 16 (which the hourglass needs) and the regression keeps the first `max_disparity` levels.
    """

    def __init__(self, max_disparity: int = 192, separable: bool = False,
                 align_corners: bool = False) -> None:
        super().__init__()
        if max_disparity <= 0 or max_disparity % 4:
            raise ConfigurationError(
                f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        self.max_disparity = max_disparity
        self.separable = separable
        self.align_corners = align_corners
        self.feature_extraction = FeatureExtraction(separable, align_corners)
        self.dres0 = nn.Sequential(convbn_3d(64, 32, 3, 1, 1), nn.ReLU(inplace=True),
                                   convbn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True))
        self.dres1 = nn.Sequential(convbn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True),
                                   convbn_3d(32, 32, 3, 1, 1))
        self.dres2 = Hourglass(32)
        self.dres3 = Hourglass(32)
        self.dres4 = Hourglass(32)
        self.classif1 = classifier()
        self.classif2 = classifier()
        self.classif3 = classifier()
        init_weights(self)

    @property
    def volume_levels(self) -> int:
        return -(-self.max_disparity // 16) * 4

    def _costs(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        if left.shape[-2] % 16 or left.shape[-1] % 16:
            raise ValueError(f"network input must be padded to a multiple of 16 px, "
                             f"got {tuple(left.shape[-2:])}")
        ref = self.feature_extraction(left)
        target = self.feature_extraction(right)
        cost = concat_cost_volume(ref, target, self.volume_levels)
        cost0 = self.dres0(cost)
        cost0 = self.dres1(cost0) + cost0
        out1, pre1, post1 = self.dres2(cost0, None, None)
        out1 = out1 + cost0
        out2, _, post2 = self.dres3(out1, pre1, post1)
        out2 = out2 + cost0
        # The published network feeds pre1 (not pre2) to the third hourglass; the weights expect it.
        out3, _, _ = self.dres4(out2, pre1, post2)
        out3 = out3 + cost0
        cost1 = self.classif1(out1)
        cost2 = self.classif2(out2) + cost1
        cost3 = self.classif3(out3) + cost2
        return [cost1, cost2, cost3] if self.training else [cost3]

    def forward(self, left: torch.Tensor, right: torch.Tensor
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: the three supervised disparities; evaluation: the final one (B x H x W)."""
        size = tuple(left.shape[-2:])
        preds = [soft_argmin(c, self.max_disparity, size, self.align_corners)[0]
                 for c in self._costs(left, right)]
        return tuple(preds) if self.training else preds[0]

    def infer(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final disparity and its confidence (both B x H x W), for inference."""
        cost = self._costs(left, right)[-1]
        disparity, prob = soft_argmin(cost, self.max_disparity, tuple(left.shape[-2:]),
                                      self.align_corners)
        return disparity, confidence_from_probability(prob, disparity)
