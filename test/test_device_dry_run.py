"""scripts/device_session.sh on the CPU (DEVICE_DRY_RUN=1): every step runs end to end at tiny
sizes and leaves under $OUT only what the device tool brings back, so the script cannot rot
between device sessions."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from stereo_depth_node.paper_comparison import comparison_markdown, read_results

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "device_session.sh"
# What the device tool brings back from $OUT (its README, "Limits").
MAX_FILES, MAX_FOLDERS_DOWN, MAX_FILE_BYTES = 8, 2, 16 * 2**20
NAME = re.compile(r"[A-Za-z0-9._-]+")


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory, small_stereo_eval) -> Path:
    """stereo_eval cut down so a CPU scores it in seconds: tsukuba (range 16) and the ETH3D pair
    (range 32 instead of 192) at 160x96, and no KITTI frame."""
    root = tmp_path_factory.mktemp("stereo_eval")
    (root / "kitti2015").mkdir()
    for scene in ("middlebury2003/tsukuba", "eth3d/playground"):
        shutil.copytree(small_stereo_eval / scene, root / scene)
    (root / "eth3d" / "playground" / "calib.txt").write_text("ndisp=32\n")
    return root


def _start_step(step: str, out: Path, data: Path) -> tuple[subprocess.Popen, Path]:
    """The step running, its output going to a file beside `out`: a pipe nobody reads while
    another step is awaited would stall it once full."""
    env = {**os.environ, "DEVICE_DRY_RUN": "1", "OUT": str(out), "PYTHON": sys.executable,
           "DEVICE_DATA": str(data)}
    output = out.parent / f"{step}_output.txt"
    with output.open("w") as sink:
        process = subprocess.Popen(["bash", str(SCRIPT), step], env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return process, output


def _finish_step(step: str, running: tuple[subprocess.Popen, Path]) -> str:
    process, output = running
    process.wait(timeout=600)
    text = output.read_text()
    assert process.returncode == 0, text[-8000:]
    assert f"== summary: {step}" in text and "failed parts: none" in text
    return text


def run_step(step: str, out: Path, data: Path) -> str:
    return _finish_step(step, _start_step(step, out, data))


@pytest.fixture(scope="module")
def training_steps(tmp_path_factory, tiny_eval):
    """The train and compare steps side by side: a dry run trains on one thread (OMP_NUM_THREADS
    in the script), so on two cores the two take the time of one. The check step runs alone
    before them: its benchmarks have a budget that a busy CPU would cut short."""
    root = tmp_path_factory.mktemp("training_steps")
    running = {step: (root / step, _start_step(step, root / step, tiny_eval))
               for step in ("train", "compare")}
    yield running
    for _, (process, _) in running.values():
        if process.poll() is None:  # a test that failed early, or one step run alone (-k)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def returned_files(out: Path) -> set[str]:
    """The files under $OUT, each checked against the device tool's limits."""
    files = [path for path in out.rglob("*") if path.is_file()]
    assert len(files) <= MAX_FILES, files
    for path in files:
        parts = path.relative_to(out).parts
        assert len(parts) - 1 <= MAX_FOLDERS_DOWN and all(NAME.fullmatch(p) for p in parts)
        assert path.stat().st_size <= MAX_FILE_BYTES, path
    return {path.relative_to(out).as_posix() for path in files}


def _tar_names(out: Path) -> set[str]:
    with tarfile.open(out / "results.tar") as archive:
        return set(archive.getnames())


def _tar_json(out: Path, name: str) -> dict:
    with tarfile.open(out / "results.tar") as archive:
        return json.load(io.TextIOWrapper(archive.extractfile(name)))


def test_check_step_runs_tests_and_the_benchmarks(tmp_path, tiny_eval):
    out = tmp_path / "out"
    stdout = run_step("check", out, tiny_eval)
    assert returned_files(out) == {"log_check.txt", "results.tar"}
    assert {"pytest_cuda.xml", "bench_matrix.md", "bench_node.md", "bench_live_eager.md",
            "bench_live_eager_publish_thread.md", "bench_live_eager_malloc_kept.md",
            "live_logs_eager/node_96x64.log"} <= _tar_names(out)
    matrix = _tar_json(out, "bench_matrix.json")
    assert {(r["variant"], r["status"]) for r in matrix["rows"]} == {("eager", "ok"),
                                                                     ("compile", "ok")}
    assert {r["backend"] for r in matrix["estimator"]["rows"]} == {"psmnet_dws", "sgbm"}
    node = _tar_json(out, "bench_node.json")
    assert [(row["compile"], row["memory_format"]) for row in node["rows"]] == [
        ("no", "contiguous"), ("no", "channels_last"), ("eager", "contiguous"),
        ("eager", "channels_last")]  # compile "no" only on the GPU
    assert all(row["stages_ms"]["end_to_end"] > 0 for row in node["rows"])
    # On the GPU also a compiled pass (compile:=true is refused on the CPU).
    (live,) = _tar_json(out, "bench_live_eager.json")["rows"]
    assert live["node_exit_code"] == 0 and live["device"] == "cpu"
    # The node's own median also covers the sets sent while connecting, so with the dry run's
    # two timed sets it need not sit below the client's; on the card 20 sets outweigh those.
    assert live["latency_ms"]["node_median"] > 0
    assert 0 < live["stream"]["sets_answered"] <= live["stream"]["sets_sent"]
    memory = live["stream"]["node_rss_mib"]
    assert memory["peak"] >= max(memory["start"], memory["end"]) > 100  # torch alone is more
    assert len(memory["every_10_s"]) == 1 and memory["every_10_s"][0] > 100  # a 2 s stream
    assert live["stream"]["node_gpu_mib"] is None
    assert (live["parameters"], live["glibc_tunables"]) == ({}, None)
    # The passes that set the node's threads and glibc's malloc say so in their rows.
    (two_threads,) = _tar_json(out, "bench_live_eager_publish_thread.json")["rows"]
    assert two_threads["parameters"] == {"publish_thread": "true"}
    assert two_threads["node_exit_code"] == 0
    (kept,) = _tar_json(out, "bench_live_eager_malloc_kept.json")["rows"]
    assert kept["glibc_tunables"].startswith("glibc.malloc.mmap_threshold=67108864")
    assert kept["node_exit_code"] == 0
    with tarfile.open(out / "results.tar") as archive:
        table = archive.extractfile("bench_node.md").read().decode()
    assert stdout.rstrip().endswith(table.rstrip())


def test_train_step_returns_weights_a_resumable_state_and_the_evaluation(tmp_path,
                                                                        training_steps):
    out, running = training_steps["train"]
    _finish_step("train", running)
    files = returned_files(out)
    parts = sorted(f for f in files if f.startswith("ckpt/last.pt.part"))
    assert files == {"log_train.txt", "psmnet_dws_gpu.pt", "results.tar", *parts} and parts
    state_path = tmp_path / "last.pt"
    state_path.write_bytes(b"".join((out / p).read_bytes() for p in parts))
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    assert state["model"] == "psmnet_dws" and "optimizer" in state and state["step"] > 0
    evaluation = _tar_json(out, "eval.json")
    assert set(evaluation["methods"]) == {"psmnet_dws (psmnet_dws.pt)",
                                          "psmnet_dws (psmnet_dws_gpu.pt)"}
    assert set(evaluation["scoring_ranges"]) == {"middlebury2003/tsukuba", "eth3d/playground",
                                                 "synthetic/0"}
    assert "evaluation" in _tar_json(out, "psmnet_dws_gpu.json")
    assert "psmnet_dws_gpu_loss.png" in _tar_names(out)
    # Where a training step's time goes, with the config that trained (the dry run's tiny one).
    step, larger = _tar_json(out, "bench_train_step.json")["rows"]
    assert (larger["batch_size"], larger["profile"]) == (3, None)  # --batch-sizes 3, unprofiled
    assert larger["samples_per_s"]["in_turn"] == pytest.approx(3e3 / larger["step_ms"]["in_turn"])
    assert (step["model"], step["crop"], step["device"]) == ("psmnet_dws", "128x64", "cpu")
    assert set(step["phases_ms"]) == {"data", "forward", "backward", "optimizer"}
    assert step["step_ms"]["in_turn"] > 0 and step["step_ms"]["ahead"] > 0
    assert step["samples_per_s"]["ahead"] == pytest.approx(2e3 / step["step_ms"]["ahead"])
    assert step["profile"]["operators"] and step["profile"]["device_busy_share"] is None
    # The same step with the weights channels-last, unprofiled (on the GPU the A/B of the order).
    channels_last = _tar_json(out, "bench_train_step_channels_last.json")
    assert channels_last["memory_format"] == "channels_last"
    (ordered,) = channels_last["rows"]
    assert ordered["profile"] is None and ordered["step_ms"]["ahead"] > 0


def test_compare_step_trains_both_networks_alike(training_steps):
    out, running = training_steps["compare"]
    _finish_step("compare", running)
    assert returned_files(out) == {"log_compare.txt", "psmnet_compare.pt",
                                   "psmnet_dws_compare.pt", "results.tar"}
    evaluation = _tar_json(out, "eval.json")
    for method in evaluation["methods"].values():
        regions = method["datasets"]["middlebury2003"]
        assert regions["occ"]["epe"] is not None and regions["noc"]["epe"] is not None
    cards = [_tar_json(out, f"{m}_compare.json") for m in ("psmnet", "psmnet_dws")]
    recipes = [{k: v for k, v in card["recipe"].items() if k != "data"} for card in cards]
    assert recipes[0] == recipes[1]
    # The page the step's results become (docs/paper_comparison.md).
    report = comparison_markdown(read_results(out / "results.tar"))
    assert "| psmnet | 5,224,768 | 8,564,320 | 5,224,768 | 8,564,320 |" in report
    assert "| psmnet_dws | 3,906,464 | 5,927,712 |" in report
    assert "30.8 % fewer parameters per call" in report
    assert "| middlebury2003 (1) | psmnet_dws |" in report
    assert "The claim that the separable features cut errors in occluded regions" in report
    # The weights by name: the device's temporary folders are gone once the call ends.
    assert "--methods psmnet:psmnet_compare.pt psmnet_dws:psmnet_dws_compare.pt" in report
