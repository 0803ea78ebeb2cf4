"""Training-time augmentation: exact geometry, right-only changes stay on the right, the two views
are changed differently, and every draw repeats for the same (seed, step)."""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from stereo_depth_node.data.augment import (AugmentConfig, StereoAugmenter, erase, misalign,
                                            photometric, scale_pair)
from stereo_depth_node.data.generator import GeneratorConfig, StereoBatch, SyntheticStereo
from stereo_depth_node.data.jpeg import jpeg_compress
from stereo_depth_node.data.plane import render_plane_pair
from test_generator import warp_right_to_left


def unit(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def plane_batch(disparity: float = 5.0, height: int = 48, width: int = 96) -> StereoBatch:
    left, right = render_plane_pair(height, width, disparity, seed=2)
    ground_truth = torch.full((1, height, width), disparity)
    return StereoBatch(unit(left), unit(right), ground_truth,
                       torch.zeros(1, height, width, dtype=torch.bool))


# Everything off; tests switch on what they look at.
NOTHING = AugmentConfig(scale_probability=0, misalign_probability=0, eraser_probability=0,
                        brightness=0, contrast=(1, 1), gamma=(1, 1), colour=(1, 1),
                        blur_probability=0, max_noise=0, jpeg_probability=0)


def test_scaling_scales_the_disparity_by_the_horizontal_factor():
    batch = plane_batch(5.0)
    scaled = scale_pair(batch, 1.25, 1.1, top=3, left=7)  # 96 -> 120 px wide: exactly 1.25
    assert scaled.left.shape == batch.left.shape
    assert torch.allclose(scaled.disparity, torch.full_like(scaled.disparity, 6.25))
    # The scaled right view warped by the scaled disparity gives the scaled left view.
    error = (warp_right_to_left(scaled.right, scaled.disparity) - scaled.left).abs()
    assert error[..., 4:-4, 12:-4].mean() < 0.01
    wrong = (warp_right_to_left(scaled.right, scaled.disparity / 1.25) - scaled.left).abs()
    assert wrong[..., 4:-4, 12:-4].mean() > 3 * error[..., 4:-4, 12:-4].mean()


def test_misalignment_shifts_and_rotates_the_right_view():
    image = unit(data.astronaut()[:64, :96])
    shifted = misalign(image, torch.tensor([1.0]), torch.tensor([0.0]))
    assert torch.allclose(shifted[..., :-1, :], image[..., 1:, :], atol=1e-5)
    # A horizontal ramp (value = x) shows where each pixel is sampled from: rotating by 0.2 deg
    # about the centre samples the top row's centre column from x_c + sin(0.2 deg) (H - 1) / 2.
    ramp = torch.arange(96, dtype=torch.float32).view(1, 1, 1, -1).expand(1, 3, 64, 96)
    rotated = misalign(ramp, torch.tensor([0.0]), torch.tensor([0.2]))
    shift = rotated[0, 0, :, 40:56] - ramp[0, 0, :, 40:56]
    expected = math.sin(math.radians(0.2)) * 31.5  # 0.11 px: well inside a bad-1 pixel
    assert shift[0].mean().item() == pytest.approx(expected, rel=1e-3)
    assert shift[-1].mean().item() == pytest.approx(-expected, rel=1e-3)


def test_eraser_fills_boxes_of_the_right_view_with_its_mean_colour():
    image = unit(data.astronaut()[:64, :96])
    erased = erase(image, [[(10, 20, 8, 12)]])
    box = (slice(None), slice(None), slice(10, 18), slice(20, 32))
    assert torch.allclose(erased[box], image.mean(dim=(2, 3), keepdim=True).expand(1, 3, 8, 12))
    outside = torch.ones_like(image, dtype=torch.bool)
    outside[box] = False
    assert torch.equal(erased[outside], image[outside])


def test_right_only_augmentations_leave_the_left_view_and_the_labels_alone():
    batch = plane_batch()
    config = dataclasses.replace(NOTHING, misalign_probability=1, eraser_probability=1)
    out = StereoAugmenter(seed=1, config=config)(batch, step=0)
    # Photometric with unit gains is the identity up to its 1e-4 floor (log of zero).
    assert (out.left - batch.left).abs().max() <= 1e-4
    assert (out.right - batch.right).abs().max() > 0.1
    assert torch.equal(out.disparity, batch.disparity) and torch.equal(out.occlusion,
                                                                       batch.occlusion)


def test_the_two_views_are_changed_differently_and_repeatably():
    batch = plane_batch()
    same = StereoBatch(batch.left, batch.left.clone(), batch.disparity, batch.occlusion)
    config = dataclasses.replace(AugmentConfig(), scale_probability=0, misalign_probability=0,
                                 eraser_probability=0)
    augmenter = StereoAugmenter(seed=3, config=config)
    first, again, other = augmenter(same, 4), augmenter(same, 4), augmenter(same, 5)
    assert torch.equal(first.left, again.left) and torch.equal(first.right, again.right)
    assert not torch.equal(first.left, other.left)
    assert (first.left - first.right).abs().mean() > 0.01  # asymmetric: each view its own draw


def test_photometric_follows_its_formula():
    image = torch.full((1, 3, 2, 2), 0.5)
    image[..., 0, 0] = 0.25
    out = photometric(image, torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([2.0]),
                      torch.tensor([1.0]), torch.tensor([0.1]))
    # 0.5 ** 2 = 0.25, blue doubled, + 0.1
    assert out[0, 0, 1, 1].item() == pytest.approx(0.35) and out[0, 2, 1, 1] == pytest.approx(0.6)
    contrast = photometric(image, torch.ones(1, 3), torch.tensor([1.0]), torch.tensor([2.0]),
                           torch.tensor([0.0]))
    mean = image.mean().item()  # stretched about the mean
    assert contrast[0, 0, 0, 0].item() == pytest.approx(mean + 2 * (0.25 - mean))


def test_augmented_rich_batches_keep_labels_and_range():
    generator = SyntheticStereo(GeneratorConfig(height=64, width=128, max_disparity=32,
                                                rich=True), seed=5)
    batch = generator.batch(0, 2)
    out = StereoAugmenter(seed=5)(batch, step=0)
    assert out.left.min() >= 0 and out.right.max() <= 1
    assert out.disparity.shape == batch.disparity.shape


@pytest.mark.parametrize("quality", [20, 50, 90])
def test_jpeg_artefacts_match_libjpeg(quality):
    """A grey photograph (only luma is quantised) through ours and through OpenCV's libjpeg."""
    grey = np.repeat(data.camera()[:200, :304, None], 3, axis=2)
    ours = np.round(jpeg_compress(unit(grey), quality)[0].permute(1, 2, 0).numpy() * 255)
    _, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
    theirs = cv2.imdecode(encoded, cv2.IMREAD_COLOR).astype(np.float32)
    artefacts = np.abs(theirs - grey).mean()
    assert artefacts > 0.5
    assert np.abs(ours - theirs).mean() < 0.2 * artefacts


def test_jpeg_quantises_a_flat_block_to_its_dc_step_and_loses_more_at_low_quality():
    # Grey 102: DC coefficient 8 x (102 - 128) = -208; at quality 10 the DC step is
    # 16 x 5000 / 10 / 100 = 80, so it becomes round(-2.6) x 80 = -240, i.e. grey 128 - 30 = 98.
    flat = torch.full((1, 3, 16, 16), 102 / 255)
    assert torch.allclose(jpeg_compress(flat, 10), torch.full_like(flat, 98 / 255), atol=1e-5)
    image = unit(data.astronaut()[:64, :96])
    errors = [(jpeg_compress(image, q) - image).abs().mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0
