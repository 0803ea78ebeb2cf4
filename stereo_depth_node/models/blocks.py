"""Building blocks shared by the PSMNet variants.

Module layouts and attribute names follow the public PSMNet code (JiaRenChang/PSMNet) so that its
published checkpoints load by name; the behaviour differs only where that code breaks on CPU,
small inputs or export (see PAPER.md, "Known traps").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def convbn(in_planes: int, out_planes: int, kernel_size: int, stride: int, pad: int,
           dilation: int) -> nn.Sequential:
    """2-D conv (no bias) + BatchNorm; dilated convs pad by their dilation, as PSMNet does."""
    padding = dilation if dilation > 1 else pad
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_planes))


def convbn_3d(in_planes: int, out_planes: int, kernel_size: int, stride: int,
              pad: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_planes, out_planes, kernel_size=kernel_size, padding=pad, stride=stride,
                  bias=False),
        nn.BatchNorm3d(out_planes))


def depthwise_separable_convbn(planes: int, pad: int, dilation: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, one BatchNorm after both (the paper's replacement conv)."""
    padding = dilation if dilation > 1 else pad
    return nn.Sequential(
        nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=padding, dilation=dilation,
                  groups=planes, bias=False),
        nn.Conv2d(planes, planes, kernel_size=1, bias=False),
        nn.BatchNorm2d(planes))


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, second conv-BN, + skip (no ReLU after the add, as in PSMNet).

    `separable` selects the paper's variant: the second conv is depthwise-separable.
    """

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None,
                 pad: int, dilation: int, separable: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(convbn(inplanes, planes, 3, stride, pad, dilation),
                                   nn.ReLU(inplace=True))
        self.conv2 = (depthwise_separable_convbn(planes, pad, dilation) if separable
                      else convbn(planes, planes, 3, 1, pad, dilation))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.downsample is not None:
            x = self.downsample(x)
        return out + x


def _spp_branch(pool: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d((pool, pool), stride=(pool, pool)),
                         convbn(128, 32, 1, 1, 0, 1),
                         nn.ReLU(inplace=True))


class FeatureExtraction(nn.Module):
    """Siamese 2-D feature extractor with spatial pyramid pooling: 3 -> 32 channels at 1/4 size."""

    SPP_POOLS = (64, 32, 16, 8)

    def __init__(self, separable: bool, align_corners: bool = False) -> None:
        super().__init__()
        self.separable = separable
        self.align_corners = align_corners
        self.inplanes = 32
        self.firstconv = nn.Sequential(convbn(3, 32, 3, 2, 1, 1), nn.ReLU(inplace=True),
                                       convbn(32, 32, 3, 1, 1, 1), nn.ReLU(inplace=True),
                                       convbn(32, 32, 3, 1, 1, 1), nn.ReLU(inplace=True))
        self.layer1 = self._make_layer(32, 3, 1, 1, 1)
        self.layer2 = self._make_layer(64, 16, 2, 1, 1)
        self.layer3 = self._make_layer(128, 3, 1, 1, 1)
        self.layer4 = self._make_layer(128, 3, 1, 1, 2)
        self.branch1, self.branch2, self.branch3, self.branch4 = (
            _spp_branch(p) for p in self.SPP_POOLS)
        self.lastconv = nn.Sequential(convbn(320, 128, 3, 1, 1, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(128, 32, kernel_size=1, padding=0, stride=1,
                                                bias=False))

    def _make_layer(self, planes: int, blocks: int, stride: int, pad: int,
                    dilation: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes))
        layers = [ResidualBlock(self.inplanes, planes, stride, downsample, pad, dilation,
                                self.separable)]
        self.inplanes = planes
        layers += [ResidualBlock(planes, planes, 1, None, pad, dilation, self.separable)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _pyramid_branch(self, branch: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        # The public code's fixed 64x64 pool fails below 256 px of input; clamping the window to
        # the feature map keeps its output on large inputs and becomes global pooling on small ones.
        pool: nn.AvgPool2d = branch[0]
        h, w = x.shape[-2:]
        window = (min(pool.kernel_size[0], h), min(pool.kernel_size[1], w))
        pooled = F.avg_pool2d(x, window, stride=window)
        out = branch[2](branch[1](pooled))
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer1(self.firstconv(x))
        out_raw = self.layer2(out)
        out_skip = self.layer4(self.layer3(out_raw))
        branches = [self._pyramid_branch(b, out_skip)
                    for b in (self.branch4, self.branch3, self.branch2, self.branch1)]
        return self.lastconv(torch.cat([out_raw, out_skip, *branches], dim=1))


class Hourglass(nn.Module):
    """3-D encoder-decoder of the stacked-hourglass PSMNet (1/4 -> 1/16 -> 1/4 resolution)."""

    def __init__(self, inplanes: int) -> None:
        super().__init__()
        wide = inplanes * 2
        self.conv1 = nn.Sequential(convbn_3d(inplanes, wide, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv2 = convbn_3d(wide, wide, 3, 1, 1)
        self.conv3 = nn.Sequential(convbn_3d(wide, wide, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(convbn_3d(wide, wide, 3, 1, 1), nn.ReLU(inplace=True))
        self.conv5 = nn.Sequential(
            nn.ConvTranspose3d(wide, wide, kernel_size=3, padding=1, output_padding=1, stride=2,
                               bias=False),
            nn.BatchNorm3d(wide))
        self.conv6 = nn.Sequential(
            nn.ConvTranspose3d(wide, inplanes, kernel_size=3, padding=1, output_padding=1,
                               stride=2, bias=False),
            nn.BatchNorm3d(inplanes))

    def forward(self, x: torch.Tensor, presqu: torch.Tensor | None,
                postsqu: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pre = self.conv2(self.conv1(x))
        pre = F.relu(pre + postsqu if postsqu is not None else pre)
        out = self.conv4(self.conv3(pre))
        post = F.relu(self.conv5(out) + (presqu if presqu is not None else pre))
        return self.conv6(post), pre, post


def classifier() -> nn.Sequential:
    return nn.Sequential(convbn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True),
                         nn.Conv3d(32, 1, kernel_size=3, padding=1, stride=1, bias=False))


def init_weights(module: nn.Module) -> None:
    """He-style init of the public code (std = sqrt(2 / (kernel volume * out channels)))."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fan_out = m.out_channels
            for k in m.kernel_size:
                fan_out *= k
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

