"""Weights in the public PSMNet layout and in ours; bad weights files are refused clearly."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from stereo_depth_node.checkpoints import load_model, range_notice, save_checkpoint
from stereo_depth_node.errors import ConfigurationError
from stereo_depth_node.estimator import StereoEstimator
from stereo_depth_node.models import build_model


def _trained_looking(name: str, max_disparity: int = 16) -> torch.nn.Module:
    """A network whose BatchNorm statistics are not the defaults, so a lost buffer would show."""
    torch.manual_seed(7)
    model = build_model(name, max_disparity)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(1, 3, 64, 96, generator=generator), torch.randn(1, 3, 64, 96,
                                                                      generator=generator)


def test_public_psmnet_checkpoint_layout_loads_and_reproduces_the_output(tmp_path):
    original = _trained_looking("psmnet")
    # As the public training script saves it: DataParallel's `module.` prefix, under 'state_dict'.
    public = {"epoch": 10, "train_loss": 0.5,
              "state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}
    path = tmp_path / "pretrained_model_KITTI2015.tar"
    torch.save(public, path)
    loaded = load_model(path, "psmnet", 16).eval()
    left, right = _pair()
    with torch.inference_mode():
        assert torch.equal(loaded(left, right), original(left, right))


def test_public_checkpoint_without_batchnorm_counters_loads(tmp_path):
    # Checkpoints from PyTorch < 0.4.1 have no num_batches_tracked buffers.
    original = _trained_looking("psmnet")
    state = {f"module.{k}": v for k, v in original.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state}, tmp_path / "old.tar")
    loaded = load_model(tmp_path / "old.tar", "psmnet", 16).eval()
    left, right = _pair()
    with torch.inference_mode():
        assert torch.equal(loaded(left, right), original(left, right))


def test_own_format_half_precision_round_trip(tmp_path):
    original = _trained_looking("psmnet_dws")
    save_checkpoint(tmp_path / "full.pt", original, "psmnet_dws")
    save_checkpoint(tmp_path / "half.pt", original, "psmnet_dws", half=True, steps=3)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    loaded = load_model(tmp_path / "half.pt", "psmnet_dws", 16)
    for name, value in original.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(loaded.state_dict()[name], expected), name


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="nope.pt' does not exist"):
        load_model(tmp_path / "nope.pt", "psmnet", 16)


def test_corrupt_weights_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ConfigurationError,
                       match="corrupt.pt' is not a readable PyTorch checkpoint") as refused:
        load_model(path, "psmnet", 16)
    assert "weights_only` set to `False`" not in str(refused.value)  # torch's advice, not ours


def test_truncated_weights_file_is_refused(tmp_path):
    save_checkpoint(tmp_path / "full.pt", build_model("psmnet", 16), "psmnet")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigurationError, match="cut.pt' is not a readable PyTorch checkpoint"):
        load_model(tmp_path / "cut.pt", "psmnet", 16)


# The pickle names a function by the module that defines it: 'posix' on Linux, and
# 'numpy.random._generator' before NumPy 2 (Ubuntu 22.04's NumPy 1.21).
RNG = f"{np.random.default_rng.__module__}.default_rng"
SYSTEM = f"{os.system.__module__}.system"


@pytest.mark.parametrize("hook, reason", [
    (np.random.default_rng, f"Unsupported global: GLOBAL {RNG} was not an allowed global by "
                            f"default"),
    # torch blocks the os module outright, with a reason of another form
    (os.system, f"Trying to load unsupported GLOBAL {SYSTEM} whose module "
                f"{os.system.__module__} is blocked"),
], ids=["off_the_allowlist", "blocked_module"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, hook, reason):
    # weights_only=True: a pickle that names an arbitrary callable must not load.
    torch.save({"state_dict": {}, "hook": hook}, tmp_path / "evil.pt")
    with pytest.raises(ConfigurationError) as refused:
        load_model(tmp_path / "evil.pt", "psmnet", 16)
    # The unpickler's reason, without torch's advice to load with weights_only=False.
    assert str(refused.value) == (
        f"weights file {str(tmp_path / 'evil.pt')!r} is not a readable PyTorch checkpoint "
        f"({reason}; weights are read with weights_only=True, tensors and plain containers only)")


@pytest.mark.parametrize("saved, requested", [("psmnet", "psmnet_dws"), ("psmnet_dws", "psmnet")])
def test_weights_of_another_architecture_are_refused_naming_both(tmp_path, saved, requested):
    model = build_model(saved, 16)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               tmp_path / "public.tar")
    save_checkpoint(tmp_path / "ours.pt", model, saved)
    for name in ("public.tar", "ours.pt"):
        with pytest.raises(ConfigurationError,
                           match=f"holds a '{saved}' network, but model '{requested}'"):
            load_model(tmp_path / name, requested, 16)


def test_weights_for_another_max_disparity_load_with_a_notice_naming_both(tmp_path):
    original = _trained_looking("psmnet_dws", 48)
    save_checkpoint(tmp_path / "w.pt", original, "psmnet_dws")
    loaded = load_model(tmp_path / "w.pt", "psmnet_dws", 192)
    assert loaded.max_disparity == 192
    for name, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert range_notice(tmp_path / "w.pt", 192) == (
        "weights 'w.pt' were trained with max disparity 48; running with max disparity 192")
    assert range_notice(tmp_path / "w.pt", 48) is None
    torch.save({"state_dict": original.state_dict()}, tmp_path / "public.tar")
    assert range_notice(tmp_path / "public.tar", 192) is None  # records no range
    assert range_notice(None, 192) is None


def test_estimator_hands_the_range_notice_to_notify_or_to_logging(tmp_path, caplog):
    save_checkpoint(tmp_path / "w.pt", build_model("psmnet_dws", 48), "psmnet_dws")
    notices: list[str] = []
    estimator = StereoEstimator("psmnet_dws", weights=tmp_path / "w.pt", max_disparity=16,
                                device="cpu", notify=notices.append)
    assert estimator.max_disparity == 16
    assert notices == ["weights 'w.pt' were trained with max disparity 48; running with max "
                       "disparity 16"]
    with caplog.at_level(logging.WARNING, logger="stereo_depth_node.estimator"):
        StereoEstimator("psmnet_dws", weights=tmp_path / "w.pt", max_disparity=32, device="cpu")
        StereoEstimator("psmnet_dws", weights=tmp_path / "w.pt", max_disparity=48, device="cpu")
    assert [r.getMessage() for r in caplog.records] == [
        "weights 'w.pt' were trained with max disparity 48; running with max disparity 32"]


def test_file_without_network_weights_is_refused(tmp_path):
    torch.save({"optimizer": {"lr": 1e-3}}, tmp_path / "opt.pt")
    with pytest.raises(ConfigurationError, match="holds no state_dict"):
        load_model(tmp_path / "opt.pt", "psmnet", 16)


def test_estimator_keeps_working_after_refusing_bad_weights(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigurationError, match="bad.pt"):
        StereoEstimator("psmnet_dws", weights=tmp_path / "bad.pt", max_disparity=16, device="cpu")
    save_checkpoint(tmp_path / "good.pt", build_model("psmnet_dws", 16), "psmnet_dws")
    estimator = StereoEstimator("psmnet_dws", weights=tmp_path / "good.pt", max_disparity=16,
                                device="cpu")
    image = np.zeros((40, 48, 3), np.uint8)
    assert estimator.estimate(image, image).disparity.shape == (40, 48)
