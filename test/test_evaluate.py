"""Evaluation: the command's output, and the shipped weights reproducing their model cards."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stereo_depth_node.checkpoints import SHIPPED_DIR, read_checkpoint
from stereo_depth_node.data.pfm import read_pfm, write_pfm
from stereo_depth_node.data.datasets import stereo_eval as stereo_eval_samples
from stereo_depth_node.data.datasets import stereo_eval_pairs
from stereo_depth_node.errors import InputError
from stereo_depth_node.evaluate import (SYNTHETIC_MAX_DISPARITY, Method, evaluate, file_sha256,
                                         format_markdown, method_labels, real_pair_means,
                                         scoring_range, synthetic_pairs)
from stereo_depth_node.model_card import update_card_evaluations

SHIPPED = ("psmnet_dws", "psmnet")


def test_eval_command_writes_json_and_markdown(tmp_path):
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "eval", "--methods",
                           "sgbm", "sgbm+fill", "psmnet_dws:none", "--no-real", "--synthetic",
                           "1", "--device", "cpu", "--json", str(tmp_path / "e.json"),
                           "--markdown", str(tmp_path / "e.md")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["methods"]) == {"sgbm", "sgbm+fill", "psmnet_dws (initial weights)"}
    assert result["scoring_ranges"] == {"synthetic/0": SYNTHETIC_MAX_DISPARITY}
    assert result["command"] == ("stereo-depth eval --methods sgbm sgbm+fill psmnet_dws:none "
                                 "--no-real --synthetic 1 --device cpu")
    sgbm = result["methods"]["sgbm"]["datasets"]["synthetic"]
    assert sgbm["images"] == 1 and 0 < sgbm["all"]["density"] < 100  # SGBM leaves holes
    assert sgbm["occ"]["bad3"] > sgbm["noc"]["bad3"]
    filled = result["methods"]["sgbm+fill"]["datasets"]["synthetic"]
    assert filled["all"]["density"] == 100.0
    assert filled["all"]["epe"] == sgbm["all"]["epe"]  # sgbm's EPE is taken after the same fill
    assert filled["all"]["bad3"] < sgbm["all"]["bad3"]  # some holes are filled right
    markdown = (tmp_path / "e.md").read_text()
    assert "| synthetic (1) | sgbm |" in markdown and "| synthetic (1) | sgbm+fill |" in markdown
    assert "(synthetic 64 px)" in markdown
    assert result["methods"]["sgbm"]["real_pair_means"] is None  # --no-real: no real pair
    assert "Over the real pairs" not in markdown


def test_real_pair_means_weigh_datasets_and_images_each_once():
    def scored(bad3: float, epe: float) -> dict:
        return {"all": {"bad3": bad3, "epe": epe, "d1": bad3, "density": 100.0},
                "noc": {"bad3": None}, "occ": {"bad3": None}, "images": 1}

    method = {"datasets": {"eth3d": scored(6, 1.0), "kitti2015": scored(15, 2.0),
                           "middlebury2003": scored(14, 1.5), "synthetic": scored(90, 9.0),
                           "synthetic_rich": scored(80, 8.0)},
              "images": {"eth3d/playground": scored(6, 1.0), "kitti2015/000000_10": scored(15, 2.0),
                         "middlebury2003/teddy": scored(10, 1.0),
                         "middlebury2003/cones": scored(18, 2.0), "synthetic/0": scored(90, 9.0),
                         "synthetic_rich/0": scored(80, 8.0)}}
    means = {"datasets": 3, "images": 4, "bad3_over_datasets": (6 + 15 + 14) / 3,
             "bad3_over_images": (6 + 15 + 10 + 18) / 4, "epe_over_datasets": 4.5 / 3,
             "epe_over_images": 6.0 / 4}
    result = {"scoring_ranges": {"eth3d/playground": 192}, "methods": {"m": method}}
    assert format_markdown(result).endswith("| m | 11.7 | 12.2 | 1.50 | 1.50 |")
    assert real_pair_means(method) == pytest.approx(means)


def test_rich_test_set_is_fixed_and_not_the_plain_one():
    rich = [p.load() for p in synthetic_pairs(2, SYNTHETIC_MAX_DISPARITY, rich=True)]
    again = [p.load() for p in synthetic_pairs(2, SYNTHETIC_MAX_DISPARITY, rich=True)]
    plain = [p.load() for p in synthetic_pairs(2, SYNTHETIC_MAX_DISPARITY)]
    assert [s.name for s in rich] == ["synthetic_rich/0", "synthetic_rich/1"]
    for first, second, other in zip(rich, again, plain):
        assert np.array_equal(first.left, second.left)
        assert np.array_equal(first.disparity, second.disparity, equal_nan=True)
        assert not np.array_equal(first.left, other.left)
    rich_pair = synthetic_pairs(2, SYNTHETIC_MAX_DISPARITY, rich=True)[1]
    assert rich_pair.name == "synthetic_rich/1"
    assert scoring_range(rich_pair) == SYNTHETIC_MAX_DISPARITY


def test_every_pair_is_scored_at_its_datasets_full_range(stereo_eval):
    expected = {"middlebury2003/cones": 60, "middlebury2003/teddy": 60,  # info.txt: max 59
                "middlebury2003/tsukuba": 16, "middlebury2003/venus": 20,
                "kitti2015/000000_10": 192,
                "eth3d/playground": 192}  # calib.txt ndisp 941, the image width: capped
    assert {pair.name: scoring_range(pair) for pair in stereo_eval_pairs(stereo_eval)} == expected
    assert scoring_range(synthetic_pairs(4, SYNTHETIC_MAX_DISPARITY)[3]) == SYNTHETIC_MAX_DISPARITY
    for sample in stereo_eval_samples(stereo_eval):  # no ground truth lies outside its range
        assert np.nanmax(sample.disparity) < expected[sample.name], sample.name
    assert Method("sgbm+fill").search_range(60) == 64 and Method("sgbm").search_range(192) == 192
    assert Method("psmnet_dws").search_range(60) == 60 and Method("psmnet").search_range(18) == 20


def test_two_pairs_of_one_name_are_refused_before_any_is_scored(stereo_eval, tmp_path):
    # Results are kept by pair name: the second KITTI frame folder with a 000000_10.png was
    # scored with the first one's estimate, and the table counted one frame.
    root = tmp_path / "stereo_eval"
    (root / "kitti2015").mkdir(parents=True)
    for name in ("middlebury2003", "eth3d"):
        (root / name).symlink_to(stereo_eval / name)
    for frame in ("drive_a", "drive_b"):
        (root / "kitti2015" / frame).symlink_to(stereo_eval / "kitti2015" / "000000_10")
    with pytest.raises(InputError, match=r"pairs with the same name: kitti2015/000000_10 \(e\.g\. "
                                         r"KITTI frames of one file name in two frame folders\)"):
        evaluate([Method("sgbm")], root, 0, device="cpu")


def test_dataset_folders_are_scored_beside_the_stereo_eval_pairs_alike(stereo_eval, tmp_path):
    # A KITTI 2015 training folder and an ETH3D scene in their published layouts: their pairs
    # are scored at their datasets' ranges, as the same pairs are inside stereo_eval.
    kitti = tmp_path / "kitti" / "training"
    kitti.mkdir(parents=True)
    for folder in ("image_2", "image_3", "disp_occ_0"):
        (kitti / folder).symlink_to(stereo_eval / "kitti2015" / "000000_10" / folder)
    out = tmp_path / "e.json"
    done = subprocess.run([sys.executable, "-m", "stereo_depth_node.cli", "eval", "--methods",
                           "sgbm", "--dataset", f"kitti2015:{tmp_path / 'kitti'}", "--dataset",
                           f"eth3d:{stereo_eval / 'eth3d' / 'playground'}", "--synthetic", "0",
                           "--device", "cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    # Without --data, only the datasets given: no Middlebury pair.
    assert result["scoring_ranges"] == {"kitti2015/000000_10": 192, "eth3d/playground": 192}
    assert result["command"] == (f"stereo-depth eval --methods sgbm --no-real --dataset "
                                 f"kitti2015:{tmp_path / 'kitti'} --dataset eth3d:"
                                 f"{stereo_eval / 'eth3d' / 'playground'} --synthetic 0 "
                                 f"--device cpu")
    reference = evaluate([Method("sgbm")], stereo_eval, 0, device="cpu", progress=lambda _: None)
    for name in result["scoring_ranges"]:
        ours = result["methods"]["sgbm"]["images"][name]
        theirs = reference["methods"]["sgbm"]["images"][name]
        assert ours["all"]["bad3"] == pytest.approx(theirs["all"]["bad3"]), name
        assert ours["all"]["pixels"] == theirs["all"]["pixels"] > 0, name


def test_a_dataset_kind_or_range_the_command_cannot_use_is_named(tmp_path, stereo_eval):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "stereo_depth_node.cli", "eval", "--methods", "sgbm",
         "--synthetic", "0", "--device", "cpu", "--json", str(tmp_path / "e.json"), *args],
        capture_output=True, text=True, timeout=600)
    done = run("--dataset", "kitti2016:/data")
    assert done.returncode == 2 and "unknown dataset kind 'kitti2016'" in done.stderr
    done = run("--dataset", "/data/kitti")
    assert done.returncode == 2 and "a dataset is KIND:PATH" in done.stderr
    # A Middlebury 2014 scene without calib.txt gives no range to score it at.
    scene = tmp_path / "Playground-imperfect"
    scene.mkdir()
    (scene / "im0.png").symlink_to(stereo_eval / "eth3d" / "playground" / "im0.png")
    (scene / "im1.png").symlink_to(stereo_eval / "eth3d" / "playground" / "im1.png")
    (scene / "disp0GT.pfm").symlink_to(stereo_eval / "eth3d" / "playground" / "disp0.pfm")
    done = run("--dataset", f"middlebury2014:{tmp_path}")
    assert done.returncode != 0 and ("no disparity range known for "
                                     "'middlebury2014/Playground-imperfect'") in done.stderr
    assert not (tmp_path / "e.json").exists()


def test_pairs_that_cannot_be_scored_are_named_and_the_others_are_scored(
        tmp_path, small_stereo_eval):
    # Each of these ended the whole evaluation: ETH3D's true disparities in this window are
    # 5.1-13.1 px, so with calib.txt's ndisp at 4 none could be scored (KeyError on the empty
    # region's EPE); a truth file of another size than the views failed inside scoring
    # (ValueError, without the pair's name), and so did a mask of another size; a missing
    # view, with the reader's InputError.
    source = small_stereo_eval / "eth3d" / "playground"
    for scene, ndisp in (("playground", 32), ("wrong_range", 4), ("other_size", 32),
                         ("no_right_view", 32), ("other_size_mask", 32)):
        folder = tmp_path / "eth3d" / scene
        folder.mkdir(parents=True)
        for name in ("im0.png", "im1.png", "disp0.pfm"):
            (folder / name).symlink_to(source / name)
        (folder / "calib.txt").write_text(f"ndisp={ndisp}\n")
    (tmp_path / "eth3d" / "other_size" / "disp0.pfm").unlink()
    write_pfm(tmp_path / "eth3d" / "other_size" / "disp0.pfm", read_pfm(source / "disp0.pfm")[:90])
    (tmp_path / "eth3d" / "no_right_view" / "im1.png").unlink()
    (tmp_path / "eth3d" / "no_right_view" / "im1.png").write_bytes(b"not a png")
    mask = tmp_path / "eth3d" / "other_size_mask" / "mask0nocc.png"
    cv2.imwrite(str(mask), np.full((96, 150), 255, np.uint8))
    lines = []
    result = evaluate([Method("sgbm"), Method("sgbm+fill")], None, 0, device="cpu",
                      progress=lines.append, datasets=[("eth3d", tmp_path / "eth3d")])
    reasons = {
        "eth3d/wrong_range": "no ground truth below its scoring range of 4 px",
        "eth3d/other_size": "eth3d/other_size: left image 160x96, right image 160x96, ground "
                            "truth 160x90; a pair's views and truth must be the same size",
        "eth3d/no_right_view": f"cannot read image '{tmp_path}/eth3d/no_right_view/im1.png' "
                               f"(not an image OpenCV reads)",
        "eth3d/other_size_mask": f"'{mask}' is 150x96 px but the ground truth is 160x96"}
    assert result["unscored"] == reasons
    assert all(f"{name} not scored: {why}" in lines for name, why in reasons.items())
    assert result["scoring_ranges"] == {"eth3d/playground": 32}
    for method in result["methods"].values():
        assert set(method["images"]) == {"eth3d/playground"}
        assert method["datasets"]["eth3d"]["images"] == 1
        assert method["real_pair_means"]["images"] == 1
    assert 0 < result["methods"]["sgbm+fill"]["real_pair_means"]["bad3_over_images"] < 100
    markdown = format_markdown(result)
    (line,) = [line for line in markdown.splitlines() if line.startswith("Not scored: ")]
    assert line == "Not scored: " + "; ".join(f"{name} ({why})" for name, why
                                              in sorted(reasons.items())) + "."
    assert "Not scored" not in format_markdown({**result, "unscored": {}})


def test_upscale_fills_the_trained_range_by_at_most_twice_below_seven_eighths_of_it():
    upscaled = Method("psmnet_dws+upscale")
    assert read_checkpoint(upscaled.weights)["max_disparity"] == 64
    assert upscaled.label == "psmnet_dws+upscale (psmnet_dws.pt)"
    # range: (input_scale, range searched at that size)
    expected = {16: (2.0, 32), 20: (2.0, 40), 32: (2.0, 64), 48: (64 / 48, 64),
                55: (64 / 55, 64), 56: (1.0, 56), 60: (1.0, 60), 192: (1.0, 192)}
    for full, (scale, search) in expected.items():
        assert upscaled.input_scale(full) == pytest.approx(scale), full
        assert upscaled.search_range(full) == search, full
    assert Method("psmnet_dws").input_scale(16) == 1.0
    for spec in ("sgbm+upscale", "psmnet_dws+upscale:none"):
        with pytest.raises(InputError, match="needs a network whose weights record the range"):
            Method(spec)


def test_two_runs_weights_of_one_name_are_told_apart_and_a_repeat_is_refused():
    runs = [Method("psmnet_dws:runs/a/last.pt"), Method("psmnet_dws:runs/b/last.pt")]
    assert method_labels([Method("psmnet_dws"), Method("psmnet_dws:/tmp/x/psmnet_dws_gpu.pt")]) \
        == ["psmnet_dws (psmnet_dws.pt)", "psmnet_dws (psmnet_dws_gpu.pt)"]  # names suffice
    assert method_labels([Method("sgbm"), *runs, Method("psmnet_dws:shipped")]) == [
        "sgbm", "psmnet_dws (runs/a/last.pt)", "psmnet_dws (runs/b/last.pt)",
        "psmnet_dws (psmnet_dws.pt)"]
    with pytest.raises(InputError, match=r"methods given twice: psmnet_dws \(runs/a/last.pt\)"):
        evaluate([*runs, runs[0]], None, 1, device="cpu", progress=lambda _: None)


def test_eval_updates_only_the_evaluation_of_the_cards_it_scored(tmp_path):
    card = {"name": "psmnet_dws", "file": "psmnet_dws.pt", "steps": 1000, "evaluation": {}}
    (tmp_path / "psmnet_dws.json").write_text(json.dumps(card))
    (tmp_path / "psmnet_dws.pt").write_bytes(b"shipped weights")
    other = {"name": "psmnet", "file": "psmnet.pt", "evaluation": {"old": 1}}
    (tmp_path / "psmnet.json").write_text(json.dumps(other))
    (tmp_path / "psmnet.pt").write_bytes(b"other shipped weights")
    (tmp_path / "eval_cpu.json").write_text(json.dumps({"methods": {}}))
    rows = {"kitti2015": {"all": {"epe": 1.0}}}
    result = {"command": "stereo-depth eval ...", "machine": {"cpu_count": 2},
              "created": "now", "scoring_ranges": {"kitti2015/000000_10": 192},
              "methods": {
                  "sgbm": {"weights_sha256": None, "datasets": rows},
                  "sgbm+fill": {"weights_sha256": None, "datasets": rows},
                  "psmnet_dws (psmnet_dws.pt)": {
                      "weights_sha256": file_sha256(tmp_path / "psmnet_dws.pt"),
                      "datasets": rows},
                  # a candidate of the same name, elsewhere: not the shipped psmnet.pt
                  "psmnet (psmnet.pt)": {"weights_sha256": file_sha256(tmp_path / "eval_cpu.json"),
                                         "datasets": rows}}}
    assert update_card_evaluations(result, tmp_path) == [tmp_path / "psmnet_dws.json"]
    updated = json.loads((tmp_path / "psmnet_dws.json").read_text())
    assert updated["steps"] == 1000  # the training facts stay
    assert updated["evaluation"] == {
        "command": "stereo-depth eval ...", "machine": {"cpu_count": 2}, "created": "now",
        "scoring_ranges": {"kitti2015/000000_10": 192},
        "datasets": {"sgbm": rows, "sgbm+fill": rows, "psmnet_dws (psmnet_dws.pt)": rows},
        "real_pair_means": {"sgbm": None, "sgbm+fill": None, "psmnet_dws (psmnet_dws.pt)": None}}
    assert json.loads((tmp_path / "psmnet.json").read_text()) == other
    assert json.loads((tmp_path / "eval_cpu.json").read_text()) == {"methods": {}}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_fit_the_package(name):
    path = SHIPPED_DIR / f"{name}.pt"
    assert path.stat().st_size < 20 * 2**20
    checkpoint = read_checkpoint(path)
    assert checkpoint["model"] == name and checkpoint["max_disparity"] == 64
    card = json.loads((SHIPPED_DIR / f"{name}.json").read_text())
    assert card["model"] == name and card["steps"] > 0 and card["samples_seen"] > 0
    assert card["recipe"]["loss"].startswith("smooth L1")


def test_shipped_weights_reproduce_their_cards(stereo_eval):
    # The README's command: both baselines, both networks, and psmnet_dws+upscale.
    result = evaluate([Method("sgbm"), Method("sgbm+fill"), *(Method(name) for name in SHIPPED),
                       Method("psmnet_dws+upscale")],
                      stereo_eval, 8, device="cpu", progress=lambda _: None)
    networks = {"psmnet_dws": {"psmnet_dws (psmnet_dws.pt)", "psmnet_dws+upscale (psmnet_dws.pt)"},
                "psmnet": {"psmnet (psmnet.pt)"}}
    for name in SHIPPED:
        card = json.loads((SHIPPED_DIR / f"{name}.json").read_text())["evaluation"]
        for label, means in card["real_pair_means"].items():
            assert means == pytest.approx(result["methods"][label]["real_pair_means"], abs=0.05)
        assert card["scoring_ranges"] == result["scoring_ranges"]
        assert set(card["datasets"]) == {"sgbm", "sgbm+fill", *networks[name]}
        for label, datasets in card["datasets"].items():
            measured = result["methods"][label]["datasets"]
            for dataset, regions in datasets.items():
                for region in ("all", "noc", "occ"):
                    for key, expected in regions[region].items():
                        actual = measured[dataset][region][key]
                        if expected is None:
                            assert actual is None
                        else:  # other CPUs may round a few pixels differently
                            assert actual == pytest.approx(expected, abs=0.05), \
                                (label, dataset, region, key)


def test_truth_at_or_above_the_scoring_range_is_counted_in_the_table(tmp_path,
                                                                     small_stereo_eval):
    # It was left out of every number, and only the JSON said how much.
    source = small_stereo_eval / "eth3d" / "playground"
    folder = tmp_path / "eth3d" / "playground"
    folder.mkdir(parents=True)
    for name in ("im0.png", "im1.png", "disp0.pfm"):
        (folder / name).symlink_to(source / name)
    (folder / "calib.txt").write_text("ndisp=8\n")  # this window's truth is 5.1-13.1 px
    truth = read_pfm(source / "disp0.pfm")
    above = int((np.isfinite(truth) & (truth >= 8)).sum())
    assert above > 0
    result = evaluate([Method("sgbm")], None, 0, device="cpu", progress=lambda _: None,
                      datasets=[("eth3d", tmp_path / "eth3d")])
    assert result["methods"]["sgbm"]["datasets"]["eth3d"]["excluded_above_max"] == above
    assert (f"Ground truth at or above the scoring range, left out of every number: eth3d "
            f"{above:,} px.") in format_markdown(result)
