"""The networks: parameter counts, shapes on awkward sizes, training outputs."""
from __future__ import annotations

import pytest
import torch

from stereo_depth_node.errors import ConfigurationError
from stereo_depth_node.models import build_model
from stereo_depth_node.models.parameter_count import count_parameters, count_parameters_per_call
from stereo_depth_node.models.psmnet import (concat_cost_volume, confidence_from_probability,
                                             regress_in_row_chunks, soft_argmin)


def test_psmnet_parameter_counts_match_the_public_network_and_the_paper():
    model = build_model("psmnet")
    assert count_parameters(model) == 5_224_768
    assert count_parameters_per_call(model) == 8_564_320


@pytest.mark.parametrize("name", ["psmnet", "psmnet_dws"])
def test_per_call_count_adds_the_feature_extractor_once_more(name):
    model = build_model(name)
    extractor = count_parameters(model.feature_extraction)
    assert count_parameters_per_call(model) == count_parameters(model) + extractor


def test_separable_network_has_about_30_percent_fewer_parameters():
    full = count_parameters_per_call(build_model("psmnet"))
    separable = count_parameters_per_call(build_model("psmnet_dws"))
    assert 0.28 < 1 - separable / full < 0.32  # the paper claims -30 %


def test_separable_block_is_conv_then_depthwise_and_pointwise():
    block = build_model("psmnet_dws").feature_extraction.layer2[3]
    conv1, depthwise, pointwise = block.conv1[0][0], block.conv2[0], block.conv2[1]
    assert conv1.kernel_size == (3, 3) and conv1.groups == 1
    assert depthwise.kernel_size == (3, 3) and depthwise.groups == 64
    assert pointwise.kernel_size == (1, 1) and pointwise.groups == 1


def test_cost_volume_pairs_left_x_with_right_x_minus_d():
    left = torch.arange(8.0).view(1, 1, 1, 8)
    right = 100 + torch.arange(8.0).view(1, 1, 1, 8)
    volume = concat_cost_volume(left, right, levels=3)
    assert volume.shape == (1, 2, 3, 1, 8)
    assert volume[0, 0, 2, 0].tolist() == [0, 0, 2, 3, 4, 5, 6, 7]
    assert volume[0, 1, 2, 0].tolist() == [0, 0, 100, 101, 102, 103, 104, 105]


@pytest.mark.parametrize("name", ["psmnet", "psmnet_dws"])
def test_training_mode_gives_three_full_size_outputs(name):
    torch.manual_seed(0)
    model = build_model(name, max_disparity=16).train()
    left, right = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    outputs = model(left, right)
    assert len(outputs) == 3
    for out in outputs:
        assert out.shape == (2, 64, 96)
        assert torch.all(out >= 0) and torch.all(out <= 15)


def test_max_disparity_multiple_of_4_but_not_16_works():
    model = build_model("psmnet_dws", max_disparity=20).eval()
    with torch.inference_mode():
        disparity, confidence = model.infer(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
    assert disparity.shape == confidence.shape == (1, 64, 64)
    assert float(disparity.max()) <= 19.0
    assert torch.all((confidence >= 0) & (confidence <= 1))


@pytest.mark.parametrize("value", [0, -4, 30])
def test_invalid_max_disparity_is_refused(value):
    with pytest.raises(ConfigurationError, match=f"positive multiple of 4, got {value}"):
        build_model("psmnet", max_disparity=value)


def test_unknown_model_is_refused_with_the_known_names():
    with pytest.raises(ConfigurationError, match="'gcnet'.*psmnet, psmnet_dws"):
        build_model("gcnet")


def test_align_corners_switch_changes_the_upsampling():
    torch.manual_seed(0)
    default = build_model("psmnet", max_disparity=16).eval()
    aligned = build_model("psmnet", max_disparity=16, align_corners=True).eval()
    aligned.load_state_dict(default.state_dict())
    left, right = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert not torch.allclose(default(left, right), aligned(left, right))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("rows, columns, max_disparity", [(12, 20, 48), (15, 17, 20), (8, 8, 16)])
@pytest.mark.parametrize("band_elements", [1, 1000, 10**9])  # a row, some rows, all at once
def test_inference_regression_in_bands_of_rows_equals_the_full_size_one(
        align_corners, rows, columns, max_disparity, band_elements):
    torch.manual_seed(rows)
    levels = -(-max_disparity // 16) * 4
    cost = torch.randn(2, 1, levels, rows, columns) * 3
    size = (rows * 4, columns * 4)
    disparity, prob = soft_argmin(cost, max_disparity, size, align_corners)
    banded, confidence = regress_in_row_chunks(cost, max_disparity, size, align_corners,
                                               band_elements)
    assert banded.shape == confidence.shape == (2, *size)
    assert float((banded - disparity).abs().max()) < 1e-4
    # Against the banded estimate: a 1e-5 px difference could move a level across the 2 px
    # radius and change the confidence by that level's whole probability.
    assert float((confidence - confidence_from_probability(prob, banded)).abs().max()) < 1e-5


def test_inference_gives_what_the_training_graph_gives():
    torch.manual_seed(0)
    model = build_model("psmnet_dws", max_disparity=32).eval()
    left, right = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        disparity, confidence = model.infer(left, right)
        assert float((disparity - model(left, right)).abs().max()) < 1e-4
    assert torch.all((confidence >= 0) & (confidence <= 1))
