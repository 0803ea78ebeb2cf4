"""The stereo-depth command line, run as a user runs it, on real evaluation images."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stereo_depth_node import cli
from stereo_depth_node.data.datasets import kitti2015, middlebury2003
from stereo_depth_node.data.pfm import read_pfm
from stereo_depth_node.estimator import StereoEstimator

CLI = [sys.executable, "-m", "stereo_depth_node.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600)


def _read_ply(path: Path) -> tuple[list[str], np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    vertex = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    return header, np.frombuffer(data[end:], vertex, count=count)


def test_infer_sgbm_with_calibration_writes_readable_files(stereo_eval, tmp_path):
    scene = stereo_eval / "eth3d/playground"
    done = run_cli("infer", scene / "im0.png", scene / "im1.png", "--model", "sgbm",
                   "--max-disparity", "64", "--calib", scene / "calib.txt", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sgbm (no weights file, max disparity 64) on cpu: match" in done.stdout

    png = cv2.imread(str(tmp_path / "disparity.png"), cv2.IMREAD_UNCHANGED)
    pfm = read_pfm(tmp_path / "disparity.pfm")
    assert png.dtype == np.uint16 and png.shape == pfm.shape == (490, 941)
    valid = np.isfinite(pfm)
    assert np.array_equal(png > 0, valid & (pfm > 0))
    np.testing.assert_allclose(png[valid] / 256.0, pfm[valid], atol=1 / 512)

    truth = read_pfm(scene / "disp0.pfm")
    both = valid & np.isfinite(truth)
    assert both.mean() > 0.3
    assert np.median(np.abs(pfm[both] - truth[both])) < 1.0  # px, real ground truth

    depth = np.load(tmp_path / "depth.npy")
    np.testing.assert_allclose(depth[valid & (pfm > 0)],
                               542.019 * 0.0595549 / pfm[valid & (pfm > 0)], rtol=1e-5)
    header, vertices = _read_ply(tmp_path / "cloud.ply")
    assert "format binary_little_endian 1.0" in header
    assert len(vertices) == np.isfinite(depth).sum()
    np.testing.assert_allclose(np.sort(vertices["z"]), np.sort(depth[np.isfinite(depth)]))
    color = cv2.imread(str(tmp_path / "disparity_color.png"))
    assert color.shape[0] == 490 and color.shape[1] > 941
    assert cv2.imread(str(tmp_path / "depth_color.png")) is not None


def test_infer_with_the_shipped_network_on_a_real_pair(stereo_eval, tmp_path):
    scene = stereo_eval / "middlebury2003/tsukuba"
    done = run_cli("infer", scene / "imL.png", scene / "imR.png", "--device", "cpu",
                   "--focal", "615", "--baseline", "0.1", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "psmnet_dws (psmnet_dws.pt, max disparity 64)" in done.stdout
    estimate = read_pfm(tmp_path / "disparity.pfm")
    assert estimate.shape == (288, 384) and np.all(np.isfinite(estimate))
    [truth] = [s for s in middlebury2003(scene)]
    known = np.isfinite(truth.disparity)
    error = np.abs(estimate - truth.disparity)[known]
    assert error.mean() < 2.5 and np.mean(error > 3) < 0.2  # trained weights, real pair
    depth, ahead = np.load(tmp_path / "depth.npy"), estimate > 0
    np.testing.assert_allclose(depth[ahead], 615 * 0.1 / estimate[ahead], rtol=1e-5)


def test_shipped_weights_run_at_192_and_find_disparities_above_their_trained_64(stereo_eval,
                                                                               tmp_path):
    # The real KITTI frame with the right view shifted by 64 px: every ground-truth disparity
    # grows by 64 (a left pixel at x matched at x - d is at x - d - 64 in the cropped right view),
    # so all of it lies above the 64 px the shipped weights were trained with.
    frame, shift = stereo_eval / "kitti2015/000000_10", 64
    left = cv2.imread(str(frame / "image_2/000000_10.png"))
    right = cv2.imread(str(frame / "image_3/000000_10.png"))
    cv2.imwrite(str(tmp_path / "left.png"), left[:, :-shift])
    cv2.imwrite(str(tmp_path / "right.png"), right[:, shift:])
    [sample] = kitti2015(frame)
    truth = sample.disparity[:, :-shift] + shift
    done = run_cli("infer", tmp_path / "left.png", tmp_path / "right.png", "--max-disparity",
                   "192", "--device", "cpu", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "note:" in line] == [
        "stereo-depth infer: note: weights 'psmnet_dws.pt' were trained with max disparity 64; "
        "running with max disparity 192"]
    assert "psmnet_dws (psmnet_dws.pt, max disparity 192)" in done.stdout
    estimate = read_pfm(tmp_path / "out/disparity.pfm")
    assert estimate.shape == truth.shape == (375, 1242 - shift)
    known = np.isfinite(truth)
    assert known.sum() > 50_000 and truth[known].min() > 64
    assert np.mean(estimate[known] > 64) > 0.9
    error = np.abs(estimate - truth)[known]
    assert np.median(error) < 2.0 and np.mean(error > 3) < 0.3  # px, real ground truth


@pytest.mark.parametrize("args, message", [
    (("missing_left.png", "missing_right.png", "--model", "sgbm"),
     "cannot read image 'missing_left.png'"),
    (("{left}", "{right}", "--model", "sgbm", "--max-disparity", "24"),
     "multiple of 16 for sgbm, got 24"),
    (("{left}", "{right}", "--weights", "{left}"), "is not a readable PyTorch checkpoint"),
    (("{left}", "{right}", "--device", "cuda"), "device 'cuda' requested"),
    (("{left}", "{right}", "--focal", "500"), "--focal and --baseline go together"),
    (("{left}", "{right}", "--model", "sgbm", "--device", "gpu"),
     "device 'gpu' is not one of auto, cpu, cuda, cuda:N"),
    (("{left}", "{right}", "--model", "sgbm", "--lr-check", "--lr-threshold", "-1"),
     "lr_threshold must be >= 0, got -1.0"),
    (("{left}", "{right}", "--model", "sgbm", "--calib", "{eth3d_calib}"),
     "calibration '{eth3d_calib}' is for 941x490 px images, but the images are 434x383 px"),
])
def test_infer_errors_exit_2_with_one_line(stereo_eval, tmp_path, args, message):
    scene = stereo_eval / "middlebury2003/venus"
    values = {"left": scene / "imL.png", "right": scene / "imR.png",
              "eth3d_calib": stereo_eval / "eth3d/playground/calib.txt"}
    done = run_cli("infer", *(a.format(**values) for a in args), "--out", tmp_path)
    if "cuda" in args and "CUDA is not available" not in done.stderr and done.returncode == 0:
        pytest.skip("this machine has CUDA")
    assert done.returncode == 2
    # One line: a missing image also drew OpenCV's own warning before the error.
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("stereo-depth infer: error: ")
    assert message.format(**values) in done.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (("infer", "{left}", "{right}", "--model", "sgbm", "--out", "{file}"),
     "argument --out: '{file}' exists and is not a folder"),
    (("infer", "{left}", "{right}", "--model", "sgbm", "--out", "{file}/sub"),
     "argument --out: cannot write '{file}/sub': '{file}' is not a writable folder"),
    (("infer", "{left}", "{right}", "--model", "sgbm", "--out", "{tmp}/" + "x" * 300),
     "argument --out: cannot write '{tmp}/" + "x" * 300 + "': File name too long"),
    (("eval", "--methods", "sgbm", "--no-real", "--synthetic", "1", "--json", "{file}/e.json"),
     "argument --json: cannot write '{file}/e.json': '{file}' is not a writable folder"),
    (("eval", "--methods", "sgbm", "--no-real", "--synthetic", "1", "--markdown", "{tmp}"),
     "argument --markdown: '{tmp}' is a folder; give a file name"),
    (("export", "--height", "0", "--out", "{tmp}/m.onnx"),
     "argument --height: 0 px is below the 32 px the networks take"),
    (("average", "{file}", "{file}", "--out", "{file}/avg.pt"),
     "argument --out: cannot write '{file}/avg.pt': '{file}' is not a writable folder"),
    (("paper-comparison", "{file}", "--out", "{file}/c.md"),
     "argument --out: cannot write '{file}/c.md': '{file}' is not a writable folder"),
    (("demo", "--out", "{file}"), "argument --out: '{file}' exists and is not a folder"),
])
def test_output_paths_it_cannot_write_are_refused_before_the_work(stereo_eval, tmp_path, args,
                                                                  message):
    # They ended in a traceback (FileExistsError, NotADirectoryError) after all the matching.
    scene = stereo_eval / "middlebury2003/venus"
    (tmp_path / "afile").write_text("")
    values = {"left": scene / "imL.png", "right": scene / "imR.png", "file": tmp_path / "afile",
              "tmp": tmp_path}
    done = run_cli(*(a.format(**values) for a in args))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert message.format(**values) in done.stderr


def test_an_out_folder_it_cannot_create_is_named_before_the_matching(stereo_eval, tmp_path,
                                                                    monkeypatch, capsys):
    # Under /proc, root passes the parse-time check and mkdir fails only when the results are
    # written: "[Errno 2] No such file or directory: '/proc/forbidden'". Without that check, a
    # folder under a file stands for such a place.
    monkeypatch.setattr(cli, "_creatable", lambda folder, text: None)
    monkeypatch.setattr(StereoEstimator, "estimate",
                        lambda *_: pytest.fail("matched before the folder was made"))
    scene = stereo_eval / "middlebury2003/venus"
    (tmp_path / "file").write_text("")
    out = tmp_path / "file/sub"
    code = cli.main(["infer", str(scene / "imL.png"), str(scene / "imR.png"), "--model", "sgbm",
                     "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (f"stereo-depth infer: error: cannot create the output "
                                       f"folder '{out}' (Not a directory)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("hidden, args, message", [
    ("onnx", (), "export needs the onnx package, which is not installed: pip install onnx, or "
     "the dev extra (pip install '.[dev]' in the checkout)"),
    ("onnxruntime", ("--check",), "--check needs the onnxruntime package, which is not "
     "installed: pip install onnxruntime, or the dev extra (pip install '.[dev]' in the "
     "checkout)"),
])
def test_export_without_its_optional_packages_names_them_before_any_work(
        tmp_path, monkeypatch, capsys, hidden, args, message):
    # They ended in torch's OnnxExporterError or a ModuleNotFoundError traceback, after the
    # network was loaded (and, for --check, after the export was written).
    if hidden == "onnxruntime":
        pytest.importorskip("onnx")
    monkeypatch.setitem(sys.modules, hidden, None)  # import fails as if it were not installed
    code = cli.main(["export", "--weights", "none", "--out", str(tmp_path / "sub/m.onnx"), *args])
    assert code == 2
    assert capsys.readouterr().err == f"stereo-depth export: error: {message}\n"
    assert not any(tmp_path.iterdir())


def test_every_infer_option_says_what_it_takes(capsys):
    commands = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert [a.dest for a in commands.choices["infer"]._actions if not a.help] == []
    with pytest.raises(SystemExit) as exited:
        cli.main(["infer", "--help"])
    assert exited.value.code == 0
    # The range the estimator accepts (check_input_scale), which the help did not say.
    assert "before matching, in (0, 4];" in " ".join(capsys.readouterr().out.split())


def test_params_prints_both_conventions():
    done = run_cli("params")
    assert done.returncode == 0
    psmnet_row = next(line for line in done.stdout.splitlines() if line.startswith("| psmnet |"))
    assert "5,224,768" in psmnet_row and "8,564,320" in psmnet_row


def test_export_command_checks_parity(tmp_path):
    done = run_cli("export", "--model", "psmnet_dws", "--weights", "none", "--max-disparity",
                   "16", "--height", "48",
                   "--width", "64", "--out", tmp_path / "m.onnx", "--check")
    assert done.returncode == 0, done.stderr
    assert "1x3x48x64" in done.stdout and "max abs diff" in done.stdout
    assert (tmp_path / "m.onnx").stat().st_size > 1_000_000


def test_export_of_shipped_weights_at_another_range_notes_both(tmp_path):
    done = run_cli("export", "--max-disparity", "32", "--height", "48", "--width", "64",
                   "--out", tmp_path / "m.onnx")
    assert done.returncode == 0, done.stderr
    assert ("stereo-depth export: note: weights 'psmnet_dws.pt' were trained with max disparity "
            "64; running with max disparity 32") in done.stderr


def test_bench_estimator_prints_a_table_and_writes_json(tmp_path):
    done = run_cli("bench", "estimator", "--backends", "sgbm", "psmnet_dws", "--sizes", "96x64",
                   "--max-disparity", "16", "--device", "cpu", "--warmup", "0", "--repeats", "2",
                   "--json", tmp_path / "b.json")
    assert done.returncode == 0, done.stderr
    assert "| sgbm | 96x64 | cpu |" in done.stdout
    result = json.loads((tmp_path / "b.json").read_text())
    assert [row["backend"] for row in result["rows"]] == ["sgbm", "psmnet_dws"]
    for row in result["rows"]:
        assert row["median_ms"] > 0 and row["pairs_per_s"] == pytest.approx(
            1e3 / row["median_ms"], rel=1e-2)
    assert result["machine"]["cpu_count"] >= 1
    assert [row["memory_format"] for row in result["rows"]] == ["-", "channels_last"]


def test_bench_estimator_times_each_weight_order_in_one_run(tmp_path):
    done = run_cli("bench", "estimator", "--backends", "psmnet_dws", "--sizes", "96x64",
                   "--max-disparity", "16", "--device", "cpu", "--warmup", "0", "--repeats", "1",
                   "--memory-formats", "contiguous", "channels_last", "--json", tmp_path / "b.json")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [row["memory_format"] for row in rows] == ["contiguous", "channels_last"]
    assert "| psmnet_dws | 96x64 | cpu | fp32 | channels_last |" in done.stdout


@pytest.mark.parametrize("kind", ["estimator", "inputs", "memory", "node", "live", "matrix"])
def test_bench_sizes_must_be_width_x_height(kind, tmp_path):
    done = run_cli("bench", kind, "--sizes", "640x", "--json", tmp_path / "b.json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"stereo-depth bench {kind}: error: argument --sizes: expected WIDTHxHEIGHT (e.g. "
        f"640x480), got '640x'")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_live_names_the_nodes_configuration_error(tmp_path):
    done = run_cli("bench", "live", "--device", "cuda", "--sizes", "96x64", "--json",
                   tmp_path / "b.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("stereo-depth bench: error: stereo_depth_node: configuration "
                                  "error: device 'cuda' requested but CUDA is not available")
    assert not (tmp_path / "b.json").exists()


def test_bench_live_node_parameters_are_name_value_pairs_the_node_accepts(tmp_path):
    done = run_cli("bench", "live", "--param", "publish_thread", "--json", tmp_path / "b.json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "stereo-depth bench live: error: argument --param: expected NAME:=VALUE, got "
        "'publish_thread'")
    done = run_cli("bench", "live", "--model", "sgbm", "--sizes", "96x64", "--param",
                   "publish_thread:=maybe", "--json", tmp_path / "b.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("stereo-depth bench: error: stereo_depth_node: configuration "
                                  "error: "), done.stderr
    assert "publish_thread" in done.stderr and "'maybe'" in done.stderr, done.stderr
    assert not (tmp_path / "b.json").exists()
    # A name the node does not declare would be ignored by it, yet label the row.
    done = run_cli("bench", "live", "--model", "sgbm", "--param", "publish_threads:=true",
                   "--json", tmp_path / "b.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert ("error: argument --param: the node has no parameter 'publish_threads'; it has "
            "model, weights, ") in done.stderr
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("args, message", [
    (("train", "--config", "{bad_yaml}"), "stereo-depth train: error: '{bad_yaml}' is not valid "
     "YAML: expected ',' or ']', but got '<stream end>' (line 2, column 1)"),
    (("paper-comparison", "{bad_yaml}"), "stereo-depth paper-comparison: error: '{bad_yaml}' is "
     "not a tar archive: not the compare step's results.tar"),
    (("bench", "estimator", "--backends", "sgbm", "--repeats", "0", "--json", "{tmp}/b.json"),
     "stereo-depth bench estimator: error: argument --repeats: 0 is below 1"),
    (("eval", "--methods", "sgbm", "--no-real", "--synthetic", "0", "--json", "{tmp}/e.json"),
     "stereo-depth eval: error: nothing to score: --no-real without --dataset, and no synthetic "
     "scenes (--synthetic 0)"),
    (("eval", "--methods", "sgbm", "--no-real", "--synthetic", "1", "--json", "{tmp}/e.json",
      "--update-cards", "{tmp}/no_cards"),
     "stereo-depth eval: error: --update-cards: no folder '{tmp}/no_cards'"),
    # A missing file said only "[Errno 2] No such file or directory: '...'".
    (("train", "--config", "{tmp}/missing.yaml", "--out-dir", "{tmp}/run"),
     "stereo-depth train: error: training settings file '{tmp}/missing.yaml' does not exist (a "
     "YAML file of TrainConfig fields, as in config/)"),
    (("train", "--resume", "{tmp}/missing.pt", "--out-dir", "{tmp}/run"),
     "stereo-depth train: error: training checkpoint '{tmp}/missing.pt' does not exist "
     "(--resume takes the last.pt of a stereo-depth train run)"),
    (("paper-comparison", "{tmp}/missing.tar", "--out", "{tmp}/c.md"),
     "stereo-depth paper-comparison: error: results archive '{tmp}/missing.tar' does not exist "
     "(the results.tar of scripts/device_session.sh compare)"),
])
def test_bad_files_and_counts_end_in_one_line_before_any_work(tmp_path, args, message):
    # Each ended in a traceback, a crash after the work, or a run that scored nothing.
    values = {"bad_yaml": tmp_path / "bad.yaml", "tmp": tmp_path}
    values["bad_yaml"].write_text("crop_height: [1\n")
    done = run_cli(*(a.format(**values) for a in args))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == message.format(**values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_training_files_it_cannot_use_are_refused_before_the_run_folder_is_made(tmp_path):
    # A garbled --resume ended in torch's traceback; missing --init-weights were found only after
    # the run's folder and config.yaml had been written.
    garbled = tmp_path / "last.pt"
    garbled.write_bytes(b"not a checkpoint")
    done = run_cli("train", "--resume", garbled, "--out-dir", tmp_path / "run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"stereo-depth train: error: training checkpoint '{garbled}' is not a readable PyTorch "
        f"checkpoint (")
    done = run_cli("train", "--init-weights", tmp_path / "missing.pt", "--out-dir",
                   tmp_path / "run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"stereo-depth train: error: weights file '{tmp_path / 'missing.pt'}' does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_eval_outside_the_checkout_says_how_to_name_the_data(tmp_path, monkeypatch, capsys):
    # The default ../shared/data/stereo_eval is relative to where the command runs.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["eval", "--methods", "sgbm", "--synthetic", "1"]) == 2
    assert capsys.readouterr().err == (
        "stereo-depth eval: error: dataset folder '../shared/data/stereo_eval' (--data's "
        "default, relative to the current folder) does not exist: name the stereo_eval folder "
        "with --data DIR, or give --no-real to score only the synthetic sets\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
    assert not any((tmp_path / "elsewhere").iterdir())


def test_eval_says_when_no_card_matched_the_scored_weights(tmp_path):
    (tmp_path / "cards").mkdir()
    done = run_cli("eval", "--methods", "sgbm", "--no-real", "--synthetic", "1", "--json",
                   tmp_path / "e.json", "--update-cards", tmp_path / "cards")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "e.json").read_text())["methods"]["sgbm"]
    assert done.stderr.strip().splitlines()[-1] == (
        f"no model card in '{tmp_path / 'cards'}' describes weights this evaluation scored (a "
        f"card is matched by its weights file's sha256); none updated")


def test_bench_train_step_refuses_a_config_it_does_not_know(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("model: psmnet_dws\ncrop_hight: 64\n")
    done = run_cli("bench", "train-step", "--config", config, "--json", tmp_path / "t.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"stereo-depth bench: error: unknown training settings in "
                                   f"'{config}': crop_hight")
    assert not (tmp_path / "t.json").exists()


def test_train_step_table_names_a_batch_size_that_did_not_fit():
    from stereo_depth_node.train_bench import format_table
    # The row bench_train_step writes when a batch size runs out of GPU memory; the table is
    # printed after the whole run, so it must not fail on it.
    table = format_table({"memory_format": "contiguous",
                          "rows": [{"model": "psmnet_dws", "batch_size": 32,
                                    "out_of_memory": True}]})
    row = table.splitlines()[-1]
    assert row.startswith("| psmnet_dws | | 32 | out of device memory |")
    assert row.count("|") == table.splitlines()[2].count("|")  # as many cells as the header


def test_bench_generator_writes_json(tmp_path):
    done = run_cli("bench", "generator", "--height", "64", "--width", "128", "--batch-size", "2",
                   "--batches", "2", "--device", "cpu", "--json", tmp_path / "g.json")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "g.json").read_text())
    assert result["samples_per_s"] == pytest.approx(2 / result["median_batch_s"])
    assert "| synthetic | 128x64 | cpu | 2 |" in done.stdout


def test_bench_inputs_times_decoding_and_rectification(tmp_path):
    done = run_cli("bench", "inputs", "--sizes", "160x120", "--repeats", "2", "--json",
                   tmp_path / "i.json")
    assert done.returncode == 0, done.stderr
    assert "| jpeg decode x2 | 160x120 |" in done.stdout
    result = json.loads((tmp_path / "i.json").read_text())
    assert [row["stage"] for row in result["rows"]] == [
        "jpeg decode x2", "rectify x2, opencv (cpu)", "decode + rectify x2, opencv (cpu)"]
    assert all(row["median_ms"] > 0 and row["jpeg_kib"] > 1 for row in result["rows"])
    assert result["jpeg_quality"] == 95 and result["machine"]["cpu_count"] >= 1
