"""PSMNet (stacked hourglass) and the paper's depthwise-separable variant."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigurationError
from .blocks import FeatureExtraction, Hourglass, classifier, convbn_3d, init_weights

# Probability mass within this many pixels of the soft-argmin estimate is the confidence.
CONFIDENCE_RADIUS_PX = 2.0
# Floats per band of rows in inference's regression (64 MiB in fp32): small beside the 3-D
# aggregation's volumes, and few bands (4 at 640x480, 11 at 1280x720, 192 px) for a GPU.
REGRESSION_CHUNK_ELEMENTS = 2**24


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


def _regress(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over a B x D x H x W fp32 cost's levels and its expectation: (disparity
    B x H x W, softmax)."""
    prob = F.softmax(cost, dim=1)
    candidates = torch.arange(cost.shape[1], dtype=prob.dtype, device=prob.device)
    return (prob * candidates.view(1, -1, 1, 1)).sum(dim=1), prob


def soft_argmin(cost: torch.Tensor, max_disparity: int, size: tuple[int, int],
                align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Upsample a B x 1 x D/4 x h x w cost to full size; return (disparity B x H x W, softmax)."""
    levels = cost.shape[2] * 4
    cost = F.interpolate(cost, size=(levels, *size), mode="trilinear",
                         align_corners=align_corners)
    return _regress(cost.squeeze(1)[:, :max_disparity].float())


def confidence_from_probability(prob: torch.Tensor, disparity: torch.Tensor,
                                radius: float = CONFIDENCE_RADIUS_PX) -> torch.Tensor:
    """Probability that the true disparity lies within `radius` px of the estimate, in [0, 1]."""
    candidates = torch.arange(prob.shape[1], dtype=prob.dtype, device=prob.device)
    near = (candidates.view(1, -1, 1, 1) - disparity.unsqueeze(1)).abs() <= radius
    return (prob * near).sum(dim=1).clamp(0.0, 1.0)


def _source_rows(rows_in: int, rows_out: int, align_corners: bool, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output row of a linear resize from rows_in to rows_out: the two source rows and
    the weight of the second, as torch's upsampling computes them."""
    rows = torch.arange(rows_out, device=device, dtype=torch.float32)
    if align_corners:
        source = rows * ((rows_in - 1) / (rows_out - 1) if rows_out > 1 else 0.0)
    else:
        source = ((rows + 0.5) * (rows_in / rows_out) - 0.5).clamp(min=0.0)
    below = source.floor().long().clamp(max=rows_in - 1)
    return below, (below + 1).clamp(max=rows_in - 1), source - below


def regress_in_row_chunks(cost: torch.Tensor, max_disparity: int, size: tuple[int, int],
                          align_corners: bool, chunk_elements: int = REGRESSION_CHUNK_ELEMENTS
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """soft_argmin and confidence_from_probability for inference, without the full-size volumes.

    Trilinear upsampling is separable, so the cost is first resized along disparity and width
    only (a quarter of the full-size volume) and then along height a band of rows at a time,
    each band regressed before the next: the full-size cost, its softmax and their products
    (each D x H x W floats, 675 MiB apiece at 1280x720 and 192 px) never exist at once.
    """
    height, width = size
    rows_in = cost.shape[3]
    # In fp32 from here, as soft_argmin's softmax: a bf16 cost would otherwise be rounded twice.
    volume = F.interpolate(cost.float(), size=(cost.shape[2] * 4, rows_in, width),
                           mode="trilinear", align_corners=align_corners
                           ).squeeze(1)[:, :max_disparity]
    disparity = volume.new_empty((volume.shape[0], height, width))
    confidence = torch.empty_like(disparity)
    below, above, weight = _source_rows(rows_in, height, align_corners, volume.device)
    band = max(1, chunk_elements // (max_disparity * width))
    for first in range(0, height, band):
        stop = min(first + band, height)
        estimate, prob = _regress(torch.lerp(volume.index_select(2, below[first:stop]),
                                             volume.index_select(2, above[first:stop]),
                                             weight[first:stop].view(1, 1, -1, 1)))
        disparity[:, first:stop] = estimate
        confidence[:, first:stop] = confidence_from_probability(prob, estimate)
    return disparity, confidence


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
        # Each volume is released as soon as nothing needs it (del, classifying each hourglass's
        # output at once): the 32- and 64-channel volumes at a quarter of the resolution are what
        # fills memory (bench memory: 11-17 % less per frame than keeping them to the end).
        cost = concat_cost_volume(self.feature_extraction(left),
                                  self.feature_extraction(right), self.volume_levels)
        cost0 = self.dres0(cost)
        del cost
        cost0 = self.dres1(cost0) + cost0
        out1, pre1, post1 = self.dres2(cost0, None, None)
        out1 = out1 + cost0
        cost1 = self.classif1(out1)
        out2, _, post2 = self.dres3(out1, pre1, post1)
        del out1, post1
        out2 = out2 + cost0
        cost2 = self.classif2(out2) + cost1
        # The published network feeds pre1 (not pre2) to the third hourglass; the weights expect it.
        out3, _, _ = self.dres4(out2, pre1, post2)
        del out2, pre1, post2
        out3 = out3 + cost0
        del cost0
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
        return regress_in_row_chunks(self._costs(left, right)[-1], self.max_disparity,
                                     tuple(left.shape[-2:]), self.align_corners)
