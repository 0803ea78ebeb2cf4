"""The synthetic generator: deterministic, consistent ground truth, real occlusions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stereo_depth_node.data.generator import GeneratorConfig, SyntheticStereo


@pytest.fixture(scope="module")
def clean():
    """Without photometric changes, so the views can be compared directly."""
    return SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                           photometric=False), seed=3)


def warp_right_to_left(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = right.shape
    x = torch.arange(width, dtype=torch.float32).view(1, 1, -1) - disparity
    y = torch.arange(height, dtype=torch.float32).view(1, -1, 1).expand_as(x)
    grid = torch.stack([x / (width - 1) * 2 - 1, y / (height - 1) * 2 - 1], dim=-1)
    return F.grid_sample(right, grid, mode="bilinear", align_corners=True)


def test_same_seed_and_index_give_the_same_batch(clean):
    first, again, other = clean.batch(5, 2), clean.batch(5, 2), clean.batch(6, 2)
    assert torch.equal(first.left, again.left) and torch.equal(first.disparity, again.disparity)
    assert not torch.equal(first.left, other.left)
    noisy = SyntheticStereo(GeneratorConfig(height=64, width=128, max_disparity=32), seed=3)
    assert torch.equal(noisy.batch(1, 1).right, noisy.batch(1, 1).right)


def test_warping_the_right_view_reproduces_the_left_where_visible(clean):
    batch = clean.batch(0, 4)
    warped = warp_right_to_left(batch.right, batch.disparity)
    error = (warped - batch.left).abs().mean(dim=1)
    visible = ~batch.occlusion
    # Away from depth edges (bilinear warping mixes surfaces there).
    edges = F.max_pool2d((batch.disparity[:, None] - F.avg_pool2d(
        batch.disparity[:, None], 3, 1, 1, count_include_pad=False)).abs(), 5, 1, 2)[:, 0] > 0.05
    assert error[visible & ~edges].mean() < 0.02
    assert error[batch.occlusion & ~edges].mean() > 4 * error[visible & ~edges].mean()


def test_photometric_changes_keep_the_geometry():
    config = GeneratorConfig(height=128, width=256, max_disparity=48)
    plain = SyntheticStereo(GeneratorConfig(**{**config.__dict__, "photometric": False}), seed=8)
    varied = SyntheticStereo(config, seed=8)
    a, b = plain.batch(2, 2), varied.batch(2, 2)
    assert torch.equal(a.disparity, b.disparity) and torch.equal(a.occlusion, b.occlusion)
    assert not torch.allclose(a.left, b.left)
    assert b.left.min() >= 0 and b.left.max() <= 1


def test_disparity_range_and_occlusions(clean):
    batch = clean.batch(1, 4)
    assert batch.disparity.min() > 0 and batch.disparity.max() < 48 * 1.15
    fraction = batch.occlusion.float().mean().item()
    assert 0.02 < fraction < 0.5
    # Left-border pixels whose match falls outside the right image are occluded.
    x = torch.arange(256).view(1, 1, -1)
    assert batch.occlusion[x.expand_as(batch.disparity) < batch.disparity - 1].all()


def test_layer_count_and_shapes_vary(clean):
    batch = clean.batch(2, 4)
    levels = [len(np.unique(np.round(d.numpy(), 0))) for d in batch.disparity]
    assert min(levels) > 5
