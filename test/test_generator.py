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


def depth_edges(disparity: torch.Tensor) -> torch.Tensor:
    """Pixels within 2 px of a depth edge, where bilinear warping mixes surfaces."""
    return F.max_pool2d((disparity[:, None] - F.avg_pool2d(
        disparity[:, None], 3, 1, 1, count_include_pad=False)).abs(), 5, 1, 2)[:, 0] > 0.05


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
    edges = depth_edges(batch.disparity)
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


# --- rich scenes (GeneratorConfig.rich) ----------------------------------------------------------
@pytest.fixture(scope="module")
def rich():
    return SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                           photometric=False, rich=True), seed=3)


def test_rich_scenes_are_deterministic_and_leave_the_plain_stream_alone(rich, clean):
    first, again = rich.batch(4, 2), rich.batch(4, 2)
    assert torch.equal(first.right, again.right) and torch.equal(first.disparity,
                                                                  again.disparity)
    # The plain generator draws the same numbers as before rich scenes existed: the layer
    # disparities are the plain ones except for the far backgrounds.
    plain = clean._sample_layers(torch.Generator().manual_seed(3 * 1_000_003 + 4), 2)
    drawn = rich._sample_layers(torch.Generator().manual_seed(3 * 1_000_003 + 4), 2)
    assert torch.equal(plain["d0"][:, 1:], drawn["d0"][:, 1:])


def test_rich_right_view_warps_onto_the_left_view_where_visible(rich):
    batch = rich.batch(0, 8)
    warped = warp_right_to_left(batch.right, batch.disparity)
    error = (warped - batch.left).abs().mean(dim=1)
    edges = depth_edges(batch.disparity)
    visible = ~batch.occlusion & ~edges
    assert error[visible].mean() < 0.02
    assert error[batch.occlusion & ~edges].mean() > 10 * error[visible].mean()


def test_rich_scenes_hold_curved_surfaces_wires_and_far_backgrounds(rich):
    params = rich._sample_layers(torch.Generator().manual_seed(0), 64)
    enabled = params["enabled"][:, 1:]
    surfaces = params["surface"][:, 1:][enabled]
    for kind in (1, 2, 3):  # ellipsoid, cylinder, paraboloid
        assert (surfaces == kind).float().mean() > 0.05
    assert (params["ry"] < 1.25).any()  # wires 1-2.4 px wide
    far = params["d0"][:, 0] < 1.0
    assert 0.1 < far.float().mean() < 0.5
    assert (params["b"][far, 0] == 0).all()  # a far background is fronto-parallel
    batch = rich.batch(0, 8)
    assert (batch.disparity.flatten(1).min(dim=1).values < 1.0).any()
    assert (batch.disparity > 0).all()  # still supervised


def test_highlights_saturate_and_do_not_follow_the_surface(rich):
    """One highlight on a fronto-parallel surface at disparity 10, centred at (100, 60) in the
    left view, shifted by 4 px: the right view shows it at 100 - 10 - 4 = 86, not at 90."""
    one = lambda value: torch.tensor([[float(value)]])  # noqa: E731
    spot = {"spot_x": one(100), "spot_y": one(60), "spot_radius": one(3), "spot_gain": one(2),
            "spot_shift": one(4), "spot_on": torch.tensor([[True]])}
    image = torch.full((1, 3, 128, 256), 0.3)
    zbuffer = torch.full((1, 128, 256), 10.0)
    left = rich._highlights(image, zbuffer, spot, one(10)[0], right=False)
    right = rich._highlights(image, zbuffer, spot, one(10)[0], right=True)
    assert left[0, :, 60, 100].tolist() == [1.0, 1.0, 1.0]  # saturated
    plateau = torch.nonzero(right[0, 0, 60] == 1.0).float()  # saturated, centred at 86
    assert plateau.mean().item() == pytest.approx(86.0)  # the surface point is at 90
    assert left[0, 0, 60, 90].item() == pytest.approx(0.3, abs=0.01)  # 10 px away: dark
    # It lights only the surface it is on.
    behind = rich._highlights(image, zbuffer + 5, spot, one(10)[0], right=False)
    assert torch.equal(behind, image)


def test_rich_texture_bank_holds_photographs_and_flat_colours(rich):
    from stereo_depth_node.data.textures import NATURAL_TEXTURES

    spread = rich.textures.flatten(2).std(dim=2).amax(dim=1)
    flat = spread < 1e-6
    assert flat.sum() == 16
    assert len(rich.textures) == len(NATURAL_TEXTURES) + 40 + 16


# --- ground planes (GeneratorConfig.ground_share) ------------------------------------------------
@pytest.fixture(scope="module")
def grounded():
    return SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                           photometric=False, rich=True, ground_share=1.0),
                           seed=3)


def ground_plane(params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Layer 1's disparity d0 + c (y - cy) on every pixel; B x H x W."""
    y = torch.arange(height, dtype=torch.float32).view(1, -1, 1).expand(-1, -1, width)
    return params["d0"][:, 1, None, None] + params["c"][:, 1, None, None] * (
        y - params["cy"][:, 1, None, None])


def test_ground_planes_rise_from_the_horizon_to_the_bottom_row(grounded):
    params = grounded._sample_layers(torch.Generator().manual_seed(3 * 1_000_003 + 2), 6)
    batch = grounded.batch(2, 6)
    ground = ground_plane(params, 128, 256)
    assert (params["c"][:, 1] > 0).all() and (params["b"][:, 1] == 0).all()
    assert (params["d0"][:, 0] < 1.0).all()  # a far background above the horizon
    # At y = 128, the bottom edge of the last row, it reaches 35-95 % of the range.
    edge = params["d0"][:, 1] + params["c"][:, 1] * (128 - params["cy"][:, 1])
    assert (edge >= 0.35 * 48 - 1e-3).all() and (edge <= 0.95 * 48 + 1e-3).all()
    # Below the top of the ground only nearer surfaces are seen, and the ground is seen often.
    below = torch.arange(128).view(1, -1, 1) >= (params["cy"][:, 1] - params["ry"][:, 1]
                                                 ).view(-1, 1, 1) + 1
    below = below.expand_as(ground)
    assert (batch.disparity[below] >= ground[below] - 1e-3).all()
    on_ground = (batch.disparity - ground).abs() < 1e-3
    assert on_ground[:, -10:].float().mean() > 0.3
    # The texture's perspective has the same horizon: weight 0 where the ground's disparity is.
    horizon = params["cy"][:, 1] - params["d0"][:, 1] / params["c"][:, 1]
    weight = lambda y: params["tex_w"][:, 1] + params["tex_h"][:, 1] * (y / 128 - 0.5)  # noqa
    assert torch.allclose(weight(horizon), torch.zeros(6), atol=1e-5)
    assert torch.allclose(weight(torch.tensor(128.0)), torch.ones(6), atol=1e-5)


def test_ground_scenes_warp_like_the_others_and_leave_other_scenes_alone(grounded, rich):
    batch = grounded.batch(0, 6)
    warped = warp_right_to_left(batch.right, batch.disparity)
    error = (warped - batch.left).abs().mean(dim=1)
    edges = depth_edges(batch.disparity)
    assert error[~batch.occlusion & ~edges].mean() < 0.02
    # A share below 1: the scenes left without ground keep every layer as the rich stream drew
    # it, and the rich stream itself (share 0) draws nothing more.
    some = SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                           photometric=False, rich=True, ground_share=0.5), seed=3)
    seed = torch.Generator().manual_seed
    drawn = some._sample_layers(seed(7), 16)
    plain = rich._sample_layers(seed(7), 16)
    assert "tex_w" not in plain
    flat = drawn["tex_w"][:, 1] == 1.0
    assert 0 < flat.sum() < 16
    for name in ("d0", "b", "c", "cx", "cy", "rx", "ry", "kind", "surface", "texture"):
        assert torch.equal(drawn[name][flat], plain[name][flat]), name
    for name in ("d0", "c", "cy", "ry"):
        assert (drawn[name][~flat, 1] != plain[name][~flat, 1]).all(), name


# --- small-range scenes (GeneratorConfig.small_range_share) ---------------------------------------
@pytest.mark.parametrize("rich_scenes", [False, True])
def test_small_range_scenes_scale_every_disparity_by_one_factor(rich_scenes):
    def generator(share: float) -> SyntheticStereo:
        return SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                               photometric=False, rich=rich_scenes,
                                               small_range_share=share), seed=3)

    small, full = generator(1.0).batch(4, 6), generator(0.0).batch(4, 6)
    for i in range(6):
        # Same outlines and depth order: the small scene's disparity is the full one's times a
        # factor in [0.15, 0.5], on every pixel.
        factor = small.disparity[i].sum() / full.disparity[i].sum()
        assert 0.15 <= factor <= 0.5
        torch.testing.assert_close(small.disparity[i], factor * full.disparity[i],
                                   atol=1e-3, rtol=1e-4)
        assert small.disparity[i].max() < 0.5 * 48
    # The right view is still the left one shifted by that disparity.
    warped = warp_right_to_left(small.right, small.disparity)
    error = (warped - small.left).abs().mean(dim=1)
    assert error[~small.occlusion & ~depth_edges(small.disparity)].mean() < 0.02


def test_a_share_of_small_range_scenes_leaves_the_rest_as_drawn(rich):
    some = SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=48,
                                           photometric=False, rich=True,
                                           small_range_share=0.5), seed=3)
    seed = torch.Generator().manual_seed
    drawn, plain = some._sample_layers(seed(7), 16), rich._sample_layers(seed(7), 16)
    kept = (drawn["d0"] == plain["d0"]).all(dim=1)
    assert 0 < kept.sum() < 16
    for name in ("d0", "b", "c", "height"):
        assert torch.equal(drawn[name][kept], plain[name][kept]), name
        assert not torch.equal(drawn[name][~kept], plain[name][~kept]), name
    for name in ("cx", "cy", "rx", "ry", "kind", "surface", "texture"):
        assert torch.equal(drawn[name], plain[name]), name
