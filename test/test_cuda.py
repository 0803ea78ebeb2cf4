"""CUDA against the CPU: the estimator, mixed precision, a training step, the generator and the
node's frame path. Marked `cuda` and skipped without CUDA; scripts/device_session.sh check runs
them on the GPU machine, where the stereo_eval data is the carried .device_data copy."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_depth_node.checkpoints import load_model, shipped_weights
from stereo_depth_node.data.batch_source import BatchSource
from stereo_depth_node.data.datasets import middlebury2003
from stereo_depth_node.data.generator import GeneratorConfig, SyntheticStereo
from stereo_depth_node.estimator import StereoEstimator
from stereo_depth_node.models import NEURAL_MODELS
from stereo_depth_node.pipeline import OutputSettings, process_frame
from stereo_depth_node.train import TrainConfig, synthetic_batches, train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the evaluation pairs are: the carried copy on the GPU machine, ../shared elsewhere.
EVAL_ROOTS = (os.environ.get("STEREO_EVAL_DIR", ""), REPO_ROOT / ".device_data" / "stereo_eval",
              REPO_ROOT.parent / "shared" / "data" / "stereo_eval")
FP32_TOLERANCE_PX = 0.05
MIXED_PRECISION_EPE_MARGIN_PX = 0.5


@pytest.fixture(scope="module")
def teddy():
    """Middlebury 2003 teddy (450x375, disparities up to 59 px): a real pair with ground truth."""
    for root in EVAL_ROOTS:
        scene = Path(root) / "middlebury2003" / "teddy"
        if root and scene.is_dir():
            return next(middlebury2003(scene))
    pytest.fail(f"stereo_eval missing; looked in {[str(r) for r in EVAL_ROOTS if r]}")


def _estimate(model: str, weights, device: str, precision: str, sample,
              memory_format: str = "auto") -> np.ndarray:
    estimator = StereoEstimator(model, weights, 64, device, precision, notify=lambda _t: None,
                                memory_format=memory_format)
    return estimator.estimate(sample.left, sample.right).disparity


def _public_checkpoint(tmp_path: Path) -> Path:
    """The shipped psmnet weights re-saved as the public PSMNet code saves them."""
    state = load_model(shipped_weights("psmnet"), "psmnet", 64).state_dict()
    path = tmp_path / "pretrained_public.tar"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.mark.parametrize("source", [*sorted(NEURAL_MODELS), "public"])
def test_fp32_on_cuda_equals_the_cpu(source, teddy, tmp_path):
    model, weights = (("psmnet", _public_checkpoint(tmp_path)) if source == "public"
                      else (source, "shipped"))
    cpu = _estimate(model, weights, "cpu", "fp32", teddy)
    tf32 = torch.backends.cudnn.allow_tf32
    difference = float(np.nanmax(np.abs(_estimate(model, weights, "cuda", "fp32", teddy) - cpu)))
    # With cuDNN's default TF32 this was 0.13 px on an H200 (docs/device_log.md, 2026-11-27).
    report = f"{source}: max |cuda - cpu| = {difference:.4f} px in fp32"
    print(report)
    assert torch.backends.cudnn.allow_tf32 == tf32, "the estimator left TF32 switched"
    assert difference < FP32_TOLERANCE_PX, report


@pytest.mark.parametrize("model", sorted(NEURAL_MODELS))
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_stays_near_fp32(model, precision, teddy):
    valid = np.isfinite(teddy.disparity)

    def epe(disparity: np.ndarray) -> float:
        return float(np.abs(disparity - teddy.disparity)[valid].mean())

    fp32 = _estimate(model, "shipped", "cuda", "fp32", teddy)
    mixed = _estimate(model, "shipped", "cuda", precision, teddy)
    print(f"{model} {precision}: EPE {epe(mixed):.3f} px vs fp32 {epe(fp32):.3f} px; "
          f"mean |{precision} - fp32| {float(np.abs(mixed - fp32).mean()):.3f} px")
    assert abs(epe(mixed) - epe(fp32)) < MIXED_PRECISION_EPE_MARGIN_PX


@pytest.mark.parametrize("model", sorted(NEURAL_MODELS))
def test_channels_last_on_cuda_gives_the_output_of_torchs_order(model, teddy):
    """The node keeps torch's order on CUDA until channels-last is measured faster there
    (bench node --memory-formats); this is what would let it switch."""
    valid = np.isfinite(teddy.disparity)
    ordered = _estimate(model, "shipped", "cuda", "fp32", teddy, "contiguous")
    channels_last = _estimate(model, "shipped", "cuda", "fp32", teddy, "channels_last")
    difference = float(np.nanmax(np.abs(channels_last - ordered)))
    bf16 = _estimate(model, "shipped", "cuda", "bf16", teddy, "channels_last")
    epe = {name: float(np.abs(d - teddy.disparity)[valid].mean())
           for name, d in (("fp32", ordered), ("bf16 channels_last", bf16))}
    report = (f"{model}: max |channels_last - torch's order| = {difference:.4f} px in fp32; "
              f"EPE {epe}")
    print(report)
    assert difference < FP32_TOLERANCE_PX, report
    assert abs(epe["bf16 channels_last"] - epe["fp32"]) < MIXED_PRECISION_EPE_MARGIN_PX, report


def test_bf16_training_step_lowers_the_loss(tmp_path):
    # One fixed generated batch, 50 steps: the step (autocast, backward, Adam) must learn it.
    generator = SyntheticStereo(GeneratorConfig(height=128, width=256, max_disparity=64),
                                device="cuda")
    batch = generator.batch(0, 4)
    config = TrainConfig(model="psmnet_dws", max_disparity=64, crop_height=128, crop_width=256,
                         batch_size=4, steps=50, device="cuda", precision="bf16",
                         validate_every=0, checkpoint_every=50, log_every=10,
                         out_dir=str(tmp_path))
    summary = train(config, batches=lambda _step: batch, progress=print)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert summary["device"].startswith("cuda") and summary["precision"] == "bf16"
    print(f"mean loss per 10 steps: {[round(v, 3) for v in losses]}")
    assert len(losses) == 5 and losses[-1] < 0.8 * losses[0]


def test_generator_gives_the_same_batch_on_cuda_and_cpu():
    config = GeneratorConfig(height=128, width=256, max_disparity=64)
    cpu = SyntheticStereo(config, seed=3).batch(5, 2)
    cuda = SyntheticStereo(config, seed=3, device="cuda").batch(5, 2)
    # Float rounding may flip a pixel on a layer edge (which layer is in front), so a few pixels
    # may differ; the scene, its textures and its ground truth must not.
    for name in ("left", "right", "disparity", "occlusion"):
        ours, reference = getattr(cuda, name).cpu().float(), getattr(cpu, name).float()
        same = ((ours - reference).abs() <= 1e-3) | (ours.isnan() & reference.isnan())
        print(f"{name}: {100 * float(same.float().mean()):.3f} % of pixels equal")
        assert float(same.float().mean()) > 0.999, name


def test_continuation_data_is_built_on_cuda_as_on_the_cpu():
    # The train step's data (rich scenes, ground planes, augmentation), which the plain-generator
    # tests above do not reach. Augmentation blurs and JPEG-compresses, so values are compared
    # loosely; the labels, which only the geometry makes, must agree as the generator's do.
    config = TrainConfig.from_yaml(REPO_ROOT / "config" / "train_gpu_continue.yaml",
                                   crop_height=128, crop_width=256, batch_size=2)
    cuda = synthetic_batches(config, torch.device("cuda"), 0)(5)
    cpu = synthetic_batches(config, torch.device("cpu"), 0)(5)
    assert cuda.left.device.type == "cuda" and cuda.left.shape == cpu.left.shape
    for name in ("left", "right"):
        close = (getattr(cuda, name).cpu().float() - getattr(cpu, name).float()).abs() <= 0.02
        print(f"{name}: {100 * float(close.float().mean()):.3f} % of pixels within 0.02")
        assert float(close.float().mean()) > 0.99, name
    same = (cuda.disparity.cpu() - cpu.disparity).abs() <= 1e-3
    same |= cuda.disparity.cpu().isnan() & cpu.disparity.isnan()
    print(f"disparity: {100 * float(same.float().mean()):.3f} % of pixels equal")
    assert float(same.float().mean()) > 0.995  # resampled by the up-scaling: edges may round apart


def test_batches_made_ahead_on_their_own_stream_are_the_batches_made_in_turn():
    # The worker renders on a CUDA stream of its own while the training stream runs; the
    # training stream must see each batch complete, and the allocator must not reuse its memory.
    config = TrainConfig.from_yaml(REPO_ROOT / "config" / "train_gpu_continue.yaml",
                                   crop_height=128, crop_width=256, batch_size=2)
    device = torch.device("cuda")
    make = synthetic_batches(config, device, 0)
    with BatchSource(make, device, ahead=True) as ahead:
        # A busy training stream meanwhile, as a training step's kernels would be.
        work = torch.randn(4096, 4096, device=device)
        got = []
        for step in range(4):
            got.append(ahead(step))
            for _ in range(20):
                work = torch.tanh(work @ work * 1e-3)
        torch.cuda.synchronize()
    for step, batch in enumerate(got):
        reference = make(step)
        for name in ("left", "right", "disparity", "occlusion"):
            ours, theirs = getattr(batch, name).float(), getattr(reference, name).float()
            same = ((ours - theirs).abs() <= 1e-5) | (ours.isnan() & theirs.isnan())
            assert float(same.float().mean()) > 0.9999, (step, name)


def test_frame_processing_on_cuda_follows_the_formulas_and_lands_in_pinned_memory():
    # Post-processing runs where the network ran, and one copy brings the maps to the host.
    from test_pipeline import (HEIGHT, WIDTH, assert_frame_follows_the_formulas, colour_pair,
                               expected_disparity, projections)

    estimator = StereoEstimator("psmnet_dws", "shipped", 16, "cuda", "fp32",
                                notify=lambda _t: None)
    pair = colour_pair(HEIGHT, WIDTH)
    settings = OutputSettings(min_depth=19.0, max_depth=21.0)
    estimator.estimate(*pair)  # cuDNN picks its algorithms on the first call
    matched = estimator.estimate(*pair)
    output = process_frame(estimator, *pair, *projections(WIDTH, HEIGHT), settings)
    assert estimator.device.type == "cuda"
    np.testing.assert_allclose(output.disparity, expected_disparity(
        matched.disparity, matched.confidence, settings), atol=1e-3)
    assert_frame_follows_the_formulas(output, pair[0], settings)
    for name in ("disparity", "confidence", "depth", "cloud"):
        assert torch.from_numpy(getattr(output, name)).is_pinned(), name


def test_node_messages_are_built_on_cuda():
    pytest.importorskip("rclpy")
    from stereo_depth_node.ros.bench_node import bench_node

    result = bench_node("psmnet_dws", [(320, 240)], 64, "cuda", "auto", warmup=1, repeats=2)
    stages = result["rows"][0]["stages_ms"]
    assert all(value is not None for value in stages.values())


def test_node_on_cuda_answers_over_dds_as_the_cpu_estimator_does(teddy, ros_context, tmp_path):
    # The product path on the GPU: the node process with device:=cuda, a set in over DDS, every
    # output back, the disparity as the CPU computes it in fp32 (the node runs bf16 there).
    from ros_harness import NodesUnderTest, reliable_inputs, stereo_set
    from stereo_depth_node.ros.conversions import float_image_to_array, point_cloud_to_array

    namespace = "/cuda_node"
    nodes = NodesUnderTest()
    try:
        process, client, _sent = nodes.start(
            tmp_path / "node.log", {"device": "cuda", "model": "psmnet_dws", "max_disparity": 64,
                                    **reliable_inputs(namespace)},
            namespace, stereo_set(teddy.left, teddy.right, 1.0))
        assert "psmnet_dws on cuda" in process.log()
        out = client.send_and_wait(stereo_set(teddy.left, teddy.right, 2.0),
                                   ("disparity", "depth", "points2", "confidence"))
    finally:
        codes = nodes.close()
    assert codes == [0]
    disparity = float_image_to_array(out["disparity"].image)
    expected = _estimate("psmnet_dws", "shipped", "cpu", "fp32", teddy)
    assert np.isfinite(disparity).all()
    assert np.abs(disparity - expected).mean() < MIXED_PRECISION_EPE_MARGIN_PX
    cloud = point_cloud_to_array(out["points2"])
    assert cloud.shape == (*disparity.shape, 4)
    depth = float_image_to_array(out["depth"])
    np.testing.assert_allclose(cloud[..., 2], depth, rtol=1e-6, equal_nan=True)


def test_rectification_on_cuda_matches_opencv(teddy):
    # rectify:=true with the network on the GPU remaps there (grid_sample on cached maps).
    from stereo_depth_node.rectification import Rectifier, example_camera_models

    image = np.ascontiguousarray(teddy.left)
    height, width = image.shape[:2]
    model, _ = example_camera_models(width, height, 0.9 * width, 0.12, "plumb_bob")
    opencv = Rectifier().rectify("left", image, model)
    on_cuda = Rectifier("cuda").rectify("left", image, model)
    assert on_cuda.dtype == image.dtype and on_cuda.shape == image.shape
    difference = np.abs(on_cuda.astype(int) - opencv.astype(int))
    assert difference.mean() < 0.6 and np.percentile(difference, 99.9) <= 4
