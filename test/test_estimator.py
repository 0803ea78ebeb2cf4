"""StereoEstimator: SGBM recovers a known plane, the networks run on any size, bad input is
named."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from scenes import render_two_layer_scene
from stereo_depth_node.camera import StereoCamera
from stereo_depth_node.data.plane import render_plane_pair
from stereo_depth_node.errors import ConfigurationError, InputError
from stereo_depth_node.estimator import StereoEstimator, left_right_inconsistent
from stereo_depth_node.images import (SignificantBits, check_pair, read_image,
                                     widen_to_full_range)

PLANE_DISPARITY = 30.0  # fx 500 px, baseline 0.12 m -> 2.000 m


@pytest.fixture(scope="module")
def plane():
    return render_plane_pair(240, 320, PLANE_DISPARITY, seed=5)


@pytest.fixture(scope="module")
def sgbm():
    return StereoEstimator("sgbm", max_disparity=64)


def _matchable(disparity: np.ndarray, max_disparity: int) -> np.ndarray:
    # SGBM searches max_disparity px to the left, so it cannot match the first columns.
    return disparity[:, max_disparity:]


def test_sgbm_recovers_a_fronto_parallel_plane(plane, sgbm):
    result = sgbm.estimate(*plane)
    region = _matchable(result.disparity, 64)
    within = np.abs(np.nan_to_num(region, nan=-1e3) - PLANE_DISPARITY) <= 0.5
    assert within.mean() >= 0.95  # holes count as misses


def test_sgbm_plane_gives_the_right_depth_and_points(plane, sgbm):
    camera = StereoCamera(fx=500.0, fy=500.0, cx=159.5, cy=119.5, cx_right=159.5, baseline=0.12)
    depth = camera.depth_from_pixel_shift(sgbm.estimate(*plane).disparity)
    region = _matchable(depth, 64)
    assert abs(np.nanmedian(region) - 2.0) < 0.01
    points = camera.points_from_depth(depth)
    v, u = 200, 300
    z = depth[v, u]
    assert np.isfinite(z)
    np.testing.assert_allclose(points[v, u], [(u - 159.5) * z / 500, (v - 119.5) * z / 500, z],
                               rtol=1e-6)


def test_fractional_disparity_is_recovered_to_subpixel(sgbm):
    left, right = render_plane_pair(200, 300, 17.4, seed=2)
    region = _matchable(sgbm.estimate(left, right).disparity, 64)
    assert abs(np.nanmedian(region) - 17.4) < 0.3


def test_mono_and_uint16_inputs_match_uint8_rgb(plane, sgbm):
    left, right = plane
    reference = sgbm.estimate(left, right).disparity
    wide = sgbm.estimate(left.astype(np.uint16) * 257, right.astype(np.uint16) * 257).disparity
    np.testing.assert_array_equal(np.isnan(wide), np.isnan(reference))
    np.testing.assert_allclose(wide, reference, equal_nan=True)
    mono = sgbm.estimate(left[:, :, 1], right[:, :, 1]).disparity
    assert abs(np.nanmedian(_matchable(mono, 64)) - PLANE_DISPARITY) < 0.25


@pytest.mark.parametrize("bits", [10, 12])
def test_a_camera_of_fewer_bits_in_mono16_matches_as_its_eight_bit_view(stereo_eval, bits):
    # 10- and 12-bit cameras publish mono16 with the top bits empty; read as full-range 16-bit
    # they looked nearly black (SGBM on teddy: bad-3 23 % at 8 bits, 27 % at 12, 40 % at 10).
    scene = stereo_eval / "middlebury2003" / "teddy"
    left, right = (read_image(scene / name)[:, :, 1] for name in ("imL.png", "imR.png"))
    reference = StereoEstimator("sgbm", max_disparity=64).estimate(left, right).disparity
    top = 2 ** bits - 1
    left_n, right_n = ((image.astype(np.float64) * top / 255).round().astype(np.uint16)
                       for image in (left, right))
    assert max(left_n.max(), right_n.max()) < 2 ** bits
    narrow = StereoEstimator("sgbm", max_disparity=64).estimate(left_n, right_n).disparity
    both = np.isfinite(reference) & np.isfinite(narrow)
    assert both.sum() > 0.75 * np.isfinite(reference).sum()
    assert np.mean(np.abs(narrow[both] - reference[both]) <= 1.0) > 0.97


def test_only_the_bits_a_pair_uses_are_widened_and_both_alike():
    left = np.array([[0, 4095], [100, 7]], np.uint16)   # 12 bits
    right = np.array([[0, 3000], [100, 7]], np.uint16)  # within the same 12 bits
    wide_left, wide_right = widen_to_full_range(left, right)
    np.testing.assert_array_equal(wide_left, left * 16)
    np.testing.assert_array_equal(wide_right, right * 16)
    full = np.array([[65535, 0]], np.uint16)
    assert widen_to_full_range(full, full)[0] is full
    dark = np.array([[0, 200]], np.uint16)  # at most 8 bits used: shifted by 8, no more
    np.testing.assert_array_equal(widen_to_full_range(dark)[0], dark * 256)
    eight = np.array([[0, 200]], np.uint8)
    assert widen_to_full_range(eight)[0] is eight


@pytest.mark.parametrize("scale, search", [(0.5, 32), (2.0, 64)])
def test_input_scale_returns_disparity_in_input_pixels(plane, scale, search):
    scaled = StereoEstimator("sgbm", max_disparity=search, input_scale=scale)
    result = scaled.estimate(*plane)
    assert result.disparity.shape == plane[0].shape[:2]
    assert abs(np.nanmedian(result.disparity[:, 80:]) - PLANE_DISPARITY) < 0.5


def test_left_right_check_flags_the_occluded_band():
    left, right, truth, occluded = render_two_layer_scene(
        200, 320, background=12, foreground=36, box=(50, 150, 120, 220), seed=3)
    result = StereoEstimator("sgbm", max_disparity=48, lr_check=True).estimate(left, right)
    flagged = result.occlusion
    assert flagged is not None and flagged.shape == truth.shape
    assert flagged[occluded].mean() > 0.7
    visible = ~occluded
    visible[:, :48] = False  # SGBM searches 48 px: the first left columns have no match
    assert flagged[visible].mean() < 0.1
    assert np.all(np.isnan(result.disparity[flagged]))
    assert np.all(result.confidence[flagged] == 0)  # SGBM had matched many of them
    good = visible & ~flagged
    assert np.median(np.abs(result.disparity[good] - truth[good])) < 0.5


@pytest.mark.parametrize("search", [48, 192])
def test_left_right_check_confirms_the_right_edge_at_any_search_range(search):
    # The mirrored pass's first columns are the right view's last ones, where the left pixels of
    # a narrow image mostly land: were SGBM to leave them unmatched, as it does the left view's
    # first columns, a search as wide as half the image would fail almost every pixel.
    left, right, truth, occluded = render_two_layer_scene(
        200, 384, background=10, foreground=30, box=(50, 150, 250, 320), seed=4)
    result = StereoEstimator("sgbm", max_disparity=search, lr_check=True).estimate(left, right)
    visible = ~occluded
    visible[:, :search] = False
    assert result.occlusion[visible].mean() < 0.1
    assert result.occlusion[:, -40:][visible[:, -40:]].mean() < 0.1
    good = visible & ~result.occlusion
    assert np.median(np.abs(result.disparity[good] - truth[good])) < 0.5


def test_settings_changed_during_a_frame_apply_from_the_next_one(plane):
    # The node changes input_scale from its executor thread while the worker matches a frame.
    estimator = StereoEstimator("sgbm", max_disparity=64, lr_check=True)
    sgbm, scales = estimator.matcher, []

    class ChangedMidFrame:
        def __getattr__(self, name):
            return getattr(sgbm, name)

        def match_maps(self, left, right, scale, every_column=False):
            scales.append(scale)
            estimator.input_scale = 2.0
            return sgbm.match_maps(left, right, scale, every_column)

    estimator.matcher = ChangedMidFrame()
    result = estimator.estimate(*plane)
    assert scales == [1.0, 1.0] and result.input_scale == 1.0  # both views, one scale
    estimator.matcher = sgbm
    assert estimator.estimate(*plane).input_scale == 2.0


def test_left_right_consistency_by_hand():
    left = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]])
    right = torch.tensor([[1.0, 1.0, 1.0, 5.0, 2.0]])
    # x=0: match at 0 (d 0 vs 1 -> inconsistent); x=1..3: match x-1 with d 1 -> consistent
    # except x=4 -> match at 2 where the right says 1 (vs 2): inconsistent.
    assert left_right_inconsistent(left, right, 0.5).tolist() == [[True, False, False, False,
                                                                     True]]
    outside = torch.tensor([[3.0, 0.0, 0.0, 0.0, 0.0]])
    assert left_right_inconsistent(outside, torch.zeros_like(outside), 0.5)[0, 0]
    nan = torch.tensor([[float("nan"), 0.0]])
    assert left_right_inconsistent(nan, torch.zeros_like(nan), 0.5).tolist() == [[True, False]]


def test_the_defaults_are_the_shipped_weights_at_their_own_range():
    # As the node and the command line have it; the API's default was the initial weights,
    # which put a plane 140 px off without a word.
    estimator = StereoEstimator("psmnet_dws", device="cpu")
    assert estimator.max_disparity == 64  # recorded in the shipped file
    left, right = render_plane_pair(96, 128, 10.0, seed=3)
    disparity = estimator.estimate(left, right).disparity
    assert np.nanmedian(np.abs(disparity[:, 20:] - 10.0)) < 1.0
    assert StereoEstimator("sgbm").max_disparity == 192
    assert StereoEstimator("psmnet_dws", None, device="cpu").max_disparity == 192


@pytest.mark.parametrize("name", ["psmnet", "psmnet_dws"])
@pytest.mark.parametrize("height, width", [(375, 1242), (100, 150), (33, 47)])
def test_networks_return_input_sized_maps_for_odd_sizes(name, height, width):
    estimator = StereoEstimator(name, max_disparity=16, device="cpu")
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    result = estimator.estimate(left, np.roll(left, -4, axis=1))
    assert result.disparity.shape == result.confidence.shape == (height, width)
    assert result.disparity.dtype == np.float32
    assert np.all(np.isfinite(result.disparity))
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_network_input_scale_and_lr_check_keep_input_size(scale):
    estimator = StereoEstimator("psmnet_dws", max_disparity=16, device="cpu", input_scale=scale,
                                lr_check=True)
    left, right = render_plane_pair(96, 128, 6.0, seed=1)
    result = estimator.estimate(left, right)
    assert result.disparity.shape == result.occlusion.shape == (96, 128)
    assert np.array_equal(np.isnan(result.disparity), result.occlusion)


BAD_PAIRS = [
    (lambda l, r: (l, r[:, :-8]), "left image is 96x64 px but right image is 88x64 px"),
    (lambda l, r: (l.astype(np.float32), r), "left image has dtype float32"),
    (lambda l, r: (l, np.dstack([r, r[:, :, :1]])), r"right image has shape \(64, 96, 4\)"),
    (lambda l, r: (l[:31], r[:31]), "left image is 96x31 px; both sides must be at least 32"),
    (lambda l, r: (l, r.astype(np.uint16)), "left image is uint8 but right image is uint16"),
    (lambda l, r: (l.tolist(), r), "left image must be a numpy array, got list"),
]


@pytest.mark.parametrize("model", ["sgbm", "psmnet_dws"])
@pytest.mark.parametrize("corrupt, message", BAD_PAIRS)
def test_bad_pairs_are_named_and_the_estimator_keeps_working(model, corrupt, message):
    estimator = StereoEstimator(model, max_disparity=16, device="cpu")
    left, right = render_plane_pair(64, 96, 5.0, seed=0)
    with pytest.raises(InputError, match=message):
        estimator.estimate(*corrupt(left, right))
    result = estimator.estimate(left, right)
    assert result.disparity.shape == (64, 96)


@pytest.mark.parametrize("model", ["sgbm", "psmnet_dws"])
def test_a_scale_that_shrinks_a_side_below_32_px_is_refused_and_another_scale_works(model):
    # At 0.3 the networks matched a 29x19 px image and scaled noise back up to the input.
    estimator = StereoEstimator(model, max_disparity=16, device="cpu", input_scale=0.3)
    left, right = render_plane_pair(64, 96, 5.0, seed=0)
    with pytest.raises(InputError, match=r"^input_scale 0.3 makes the 96x64 px pair 29x19 px "
                                         r"for matching; both sides must be at least 32 px"):
        estimator.estimate(left, right)
    estimator.input_scale = 1.0  # as the node sets it at runtime
    assert estimator.estimate(left, right).disparity.shape == (64, 96)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="sgbm", max_disparity=40), "multiple of 16 for sgbm, got 40"),
    (dict(model="sgbm", max_disparity=-16), "multiple of 16 for sgbm, got -16"),
    (dict(model="psmnet_dws", max_disparity=30), "multiple of 4, got 30"),
    (dict(model="psmnet", max_disparity=-8), "multiple of 4, got -8"),
    (dict(model="psmnet_dws", device="cuda"), "device 'cuda' requested but CUDA is not avail"),
    (dict(model="psmnet_dws", device="cuda:1"), "device 'cuda:1' requested but CUDA is not"),
    (dict(model="psmnet_dws", device="tpu"), "device 'tpu' is not one of"),
    (dict(model="psmnet_dws", precision="fp16"), "'fp16' needs a CUDA device"),
    (dict(model="psmnet_dws", precision="int8"), "precision 'int8' is not one of"),
    (dict(model="raft"), "unknown model 'raft'"),
    (dict(model="sgbm", weights="w.pt"), "'sgbm' takes no weights"),
    (dict(model="sgbm", compile_backend="inductor"), "there is no network to compile"),
    (dict(model="sgbm", device="gpu"), "device 'gpu' is not one of auto, cpu, cuda, cuda:N"),
    (dict(model="sgbm", device="cuda"), "requested but CUDA is not available"),
    (dict(model="sgbm", lr_threshold=-0.5), r"lr_threshold must be >= 0, got -0.5"),
    (dict(model="psmnet_dws", device="cpu", compile_backend="inductor"),
     "compile needs a CUDA device; the network runs on cpu"),
    (dict(model="psmnet_dws", compile_backend="tvm"), "compile backend 'tvm' is not one of"),
    (dict(model="psmnet_dws", memory_format="nhwc"),
     "memory_format 'nhwc' is not one of auto, contiguous, channels_last"),
    (dict(model="sgbm", input_scale=0.0), r"input_scale must be in \(0, 4\], got 0.0"),
    (dict(model="psmnet_dws", input_scale=4.5), r"input_scale must be in \(0, 4\], got 4.5"),
])
def test_bad_configuration_is_refused_with_the_value(kwargs, message):
    pytest.importorskip("torch")
    import torch
    if "cuda" in kwargs.get("device", "") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigurationError, match=message):
        StereoEstimator(**kwargs)


def test_the_traced_network_gives_the_uncompiled_disparity():
    # torch.compile's tracing (dynamo) without code generation: what the node's compile
    # parameter runs on CUDA, where inductor then generates the kernels (test_cuda.py measures it).
    left, right = render_plane_pair(64, 96, 5.0, seed=3)
    plain = StereoEstimator("psmnet_dws", "shipped", 16, "cpu").estimate(left, right)
    from torch._dynamo.utils import counters

    traced = StereoEstimator("psmnet_dws", "shipped", 16, "cpu", compile_backend="eager")
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    results = [traced.estimate(left, right)]
    # The node matches on its worker thread: the traced graph must serve calls from there too.
    worker = threading.Thread(target=lambda: results.append(traced.estimate(left, right)))
    worker.start()
    worker.join()
    assert len(results) == 2
    for result in results:
        assert np.abs(result.disparity - plain.disparity).max() < 1e-3
    # One whole graph, traced once: a graph break would leave inductor pieces to fuse.
    assert counters["stats"]["unique_graphs"] == graphs + 1
    assert sum(counters["graph_break"].values()) == breaks


@pytest.mark.parametrize("model", ["psmnet_dws", "psmnet"])
def test_channels_last_weights_give_the_contiguous_disparity_on_a_real_pair(model, stereo_eval):
    # On the CPU the weights are in channels-last order by default (faster with oneDNN); the
    # disparity must be the one torch's default order gives, to float rounding.
    scene = stereo_eval / "middlebury2003" / "teddy"
    left, right = read_image(scene / "imL.png"), read_image(scene / "imR.png")
    default = StereoEstimator(model, "shipped", 64, "cpu")
    contiguous = StereoEstimator(model, "shipped", 64, "cpu", memory_format="contiguous")
    assert (default.matcher.memory_format, contiguous.matcher.memory_format) == (
        "channels_last", "contiguous")
    weight = next(p for p in default.matcher.model.parameters() if p.dim() == 5)
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not weight.is_contiguous()
    ours, theirs = default.estimate(left, right), contiguous.estimate(left, right)
    assert np.abs(ours.disparity - theirs.disparity).max() < 1e-3
    # Confidence is the probability of the candidates within 2 px of the estimate: where the
    # estimate is a whole number, to rounding, a candidate on the window's edge counts on one
    # side and not the other (one teddy pixel, 0.0017, with the weights shipped 2026-12-07).
    on_edge = np.abs(ours.disparity - np.round(ours.disparity)) < 1e-3
    assert on_edge.mean() < 0.01
    assert np.abs(ours.confidence - theirs.confidence)[~on_edge].max() < 1e-4


def test_bf16_on_cpu_runs():
    estimator = StereoEstimator("psmnet_dws", max_disparity=16, device="cpu", precision="bf16")
    left, right = render_plane_pair(64, 64, 4.0)
    result = estimator.estimate(left, right)
    assert result.disparity.dtype == np.float32 and np.all(np.isfinite(result.disparity))


def test_a_colour_image_beside_a_mono_one_is_matched_in_grey():
    left, right = render_plane_pair(64, 96, 6.0, seed=8)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (left, right)]
    estimator = StereoEstimator("psmnet_dws", weights=None, max_disparity=16, device="cpu")
    both_grey = estimator.estimate(*grey).disparity
    assert np.array_equal(estimator.estimate(left, grey[1]).disparity, both_grey)
    assert np.array_equal(estimator.estimate(grey[0], right).disparity, both_grey)
    # Colour on both sides stays colour: the grey conversion is for mixed pairs only.
    assert not np.array_equal(estimator.estimate(left, right).disparity, both_grey)


def test_reading_a_folder_or_a_missing_file_as_an_image_says_which(tmp_path):
    with pytest.raises(InputError, match=f"^cannot read image '{tmp_path}': a folder, not a file$"):
        read_image(tmp_path)
    with pytest.raises(InputError, match="^cannot read image '.*/none.png': no such file$"):
        read_image(tmp_path / "none.png")


def test_a_mixed_pair_learns_its_bits_from_the_colour_channels():
    # A 12-bit camera's pure red at full scale is 1224 in grey (11 bits): learnt after the grey
    # conversion, the shift would be one bit larger than points2's colours then learn it.
    colour = np.zeros((40, 40, 3), np.uint16)
    colour[..., 0] = 4095
    mono = np.full((40, 40), 1000, np.uint16)
    bits = SignificantBits()
    left, right = check_pair(colour, mono, bits)
    assert bits.bits == 12
    grey_red = round(0.299 * 4095)
    assert left.shape == right.shape == (40, 40, 3)
    assert abs(int(left[0, 0, 0]) - (grey_red << 4)) <= 16 and int(right[0, 0, 1]) == 1000 << 4
