"""ONNX export: onnxruntime gives the torch output."""
from __future__ import annotations

import pytest
import torch

from stereo_depth_node.export import export_onnx, onnx_parity
from stereo_depth_node.models import build_model

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name", ["psmnet", "psmnet_dws"])
def test_onnx_matches_torch(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, max_disparity=32)
    size = export_onnx(model, tmp_path / "m.onnx", 70, 100)
    assert size == (80, 112)
    diffs = onnx_parity(model, tmp_path / "m.onnx")
    assert diffs["disparity"] < 1e-2  # px, float32 reordering only
    assert diffs["confidence"] < 1e-3
