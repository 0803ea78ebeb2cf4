"""Training-time augmentation of stereo batches, on torch on the batch's device.

What the stereo literature found to carry synthetic training over to real cameras (HSMNet,
CREStereo, RAFT-Stereo, DSMNet): the two cameras of a real rig differ, so each view gets its own
colour, gamma, brightness, contrast, blur, noise and JPEG quality; occluding patches are pasted into
the right view only (the "eraser": the network must fill in from context what it cannot match);
real rectification is imperfect, so the right view is shifted vertically by up to a pixel and
rotated by up to 0.2 degree; and a random up-scaling changes the apparent size of everything.
Geometry stays exact: the scaling scales the disparity by the horizontal factor, and the right-view
misalignment is small enough that the left disparity stays the label (0.2 degree moves a point at
most 0.22 px horizontally at 64 px from the centre row). Draws depend only on (seed, step), so a
resumed run sees the same batches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .generator import StereoBatch
from .jpeg import jpeg_compress


@dataclass
class AugmentConfig:
    scale_probability: float = 0.5
    max_scale: float = 1.3           # horizontal factor in [1, max_scale]
    stretch: float = 0.05            # vertical factor = horizontal x [1 - stretch, 1 + stretch]
    misalign_probability: float = 0.5
    max_shift_px: float = 1.0        # vertical shift of the right view
    max_rotation_deg: float = 0.2    # rotation of the right view about its centre
    eraser_probability: float = 0.5
    max_erased: int = 2              # patches pasted into the right view
    eraser_size: tuple[float, float] = (0.06, 0.35)   # side, fraction of the image height
    brightness: float = 0.08         # added, +-
    contrast: tuple[float, float] = (0.8, 1.2)
    gamma: tuple[float, float] = (0.85, 1.15)
    colour: tuple[float, float] = (0.92, 1.08)        # per channel gain
    blur_probability: float = 0.4
    max_blur_sigma: float = 1.2
    max_noise: float = 0.02
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 95)


# --- one job each, with explicit parameters (the tests call these directly) ----------------------
def scale_pair(batch: StereoBatch, scale_x: float, scale_y: float, top: int, left: int
               ) -> StereoBatch:
    """Up-scale both views by (scale_x, scale_y) and crop the original size at (top, left). With
    half-pixel-centred resampling x' + 0.5 = (x + 0.5) s, so disparity scales by exactly s_x."""
    _, _, height, width = batch.left.shape
    size = (round(height * scale_y), round(width * scale_x))
    factor = size[1] / width
    window = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
    views = [F.interpolate(v, size=size, mode="bilinear", align_corners=False)[window]
             for v in (batch.left, batch.right)]
    labels = [F.interpolate(t[:, None].float(), size=size, mode="nearest-exact")[window][:, 0]
              for t in (batch.disparity, batch.occlusion)]
    return StereoBatch(views[0], views[1], labels[0] * factor, labels[1] > 0.5)


def misalign(image: torch.Tensor, shift_y: torch.Tensor, rotation_deg: torch.Tensor
             ) -> torch.Tensor:
    """Resample B x 3 x H x W views as seen after a vertical shift of shift_y px (content moves up
    for positive values) and a rotation about the image centre, per sample."""
    batch, _, height, width = image.shape
    angle = torch.deg2rad(rotation_deg).view(-1, 1, 1)
    x = torch.arange(width, device=image.device, dtype=torch.float32).view(1, 1, -1)
    y = torch.arange(height, device=image.device, dtype=torch.float32).view(1, -1, 1)
    dx, dy = x - (width - 1) / 2, y - (height - 1) / 2
    source_x = (width - 1) / 2 + torch.cos(angle) * dx - torch.sin(angle) * dy
    source_y = (height - 1) / 2 + torch.sin(angle) * dx + torch.cos(angle) * dy \
        + shift_y.view(-1, 1, 1)
    grid = torch.stack([source_x / (width - 1) * 2 - 1, source_y / (height - 1) * 2 - 1], dim=-1)
    return F.grid_sample(image, grid.expand(batch, -1, -1, -1), mode="bilinear",
                         padding_mode="border", align_corners=True)


def erase(image: torch.Tensor, boxes: list[list[tuple[int, int, int, int]]]) -> torch.Tensor:
    """Fill each (top, left, height, width) box of sample i with that sample's mean colour."""
    out = image.clone()
    for i, sample_boxes in enumerate(boxes):
        mean = image[i].mean(dim=(1, 2), keepdim=True)
        for top, left, height, width in sample_boxes:
            out[i, :, top:top + height, left:left + width] = mean
    return out


def photometric(image: torch.Tensor, colour: torch.Tensor, gamma: torch.Tensor,
                contrast: torch.Tensor, brightness: torch.Tensor) -> torch.Tensor:
    """Per-sample colour gains (B x 3), gamma, contrast about the mean and added brightness (B)."""
    view = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
    image = image.clamp(min=1e-4) ** view(gamma) * colour.view(-1, 3, 1, 1)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    return ((image - mean) * view(contrast) + mean + view(brightness)).clamp(0, 1)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one B x 3 x H x W tensor (replicated borders)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    taps = torch.arange(-radius, radius + 1, device=image.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel, groups=3)
    return F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"),
                    kernel.transpose(2, 3), groups=3)


# --- the random pipeline ----------------------------------------------------------------------
class StereoAugmenter:
    """`augmenter(batch, step)`: the augmented batch, the same for the same (seed, step)."""

    def __init__(self, seed: int, config: AugmentConfig | None = None) -> None:
        self.seed = seed
        self.config = config or AugmentConfig()

    def __call__(self, batch: StereoBatch, step: int) -> StereoBatch:
        # Its own stream, apart from the generator's (seed * 1_000_003 + step).
        rng = torch.Generator().manual_seed(self.seed * 1_000_033 + step + 2 ** 40)
        cfg = self.config
        uniform = lambda low, high, n=1: torch.rand(n, generator=rng) * (high - low) + low  # noqa: E731
        chance = lambda p: float(torch.rand(1, generator=rng)) < p  # noqa: E731
        size, height, width = batch.left.shape[0], *batch.left.shape[2:]
        if chance(cfg.scale_probability):
            scale_x = float(uniform(1.0, cfg.max_scale))
            scale_y = scale_x * float(uniform(1 - cfg.stretch, 1 + cfg.stretch))
            scale_y = max(scale_y, 1.0)  # never smaller than the crop
            top = int(torch.randint(0, round(height * scale_y) - height + 1, (1,), generator=rng))
            left = int(torch.randint(0, round(width * scale_x) - width + 1, (1,), generator=rng))
            batch = scale_pair(batch, scale_x, scale_y, top, left)
        left, right = batch.left, batch.right
        device = left.device
        if chance(cfg.misalign_probability):
            right = misalign(right, uniform(-cfg.max_shift_px, cfg.max_shift_px, size).to(device),
                             uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, size).to(device))
        if chance(cfg.eraser_probability):
            boxes = []
            for _ in range(size):
                sample = []
                for _ in range(int(torch.randint(1, cfg.max_erased + 1, (1,), generator=rng))):
                    box_h, box_w = (int(uniform(*cfg.eraser_size) * height) for _ in range(2))
                    sample.append((int(torch.randint(0, height - box_h + 1, (1,), generator=rng)),
                                   int(torch.randint(0, width - box_w + 1, (1,), generator=rng)),
                                   box_h, box_w))
                boxes.append(sample)
            right = erase(right, boxes)
        views = []
        for view in (left, right):  # independent draws: the two cameras differ
            view = photometric(view, uniform(*cfg.colour, size * 3).view(size, 3).to(device),
                               uniform(*cfg.gamma, size).to(device),
                               uniform(*cfg.contrast, size).to(device),
                               uniform(-cfg.brightness, cfg.brightness, size).to(device))
            if chance(cfg.blur_probability):
                view = gaussian_blur(view, float(uniform(0.3, cfg.max_blur_sigma)))
            noise = torch.randn(view.shape, generator=rng).to(device)
            view = (view + noise * uniform(0, cfg.max_noise, size).view(-1, 1, 1, 1).to(device)
                    ).clamp(0, 1)
            if chance(cfg.jpeg_probability):
                view = jpeg_compress(view, int(torch.randint(*cfg.jpeg_quality, (1,),
                                                             generator=rng)))
            views.append(view)
        return StereoBatch(views[0], views[1], batch.disparity, batch.occlusion)
