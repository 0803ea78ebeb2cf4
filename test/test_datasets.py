"""Dataset readers: the real files in ../shared/data/stereo_eval, and small folders written here
in the public layouts (SceneFlow, KITTI 2012, Middlebury 2014) with known values."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stereo_depth_node.data import datasets
from stereo_depth_node.data.datasets import (dataset_pairs, eth3d, kitti2012, kitti2015,
                                             middlebury2003, middlebury2014, open_dataset,
                                             sceneflow)
from stereo_depth_node.data.pfm import write_pfm
from stereo_depth_node.errors import InputError

# Shape and disparity range of each quarter-size scene (values / scale from info.txt).
# Disparity range inside the scored region (venus reaches 19.75 in the border all.png leaves out).
MIDDLEBURY = {"tsukuba": ((288, 384), 5.0, 14.0), "venus": ((383, 434), 3.0, 19.125),
              "teddy": ((375, 450), 12.5, 52.75), "cones": ((375, 450), 5.5, 55.0)}


def test_middlebury2003_scenes(stereo_eval):
    samples = {s.name.split("/")[1]: s for s in middlebury2003(stereo_eval / "middlebury2003")}
    assert set(samples) == set(MIDDLEBURY)
    for name, (shape, low, high) in MIDDLEBURY.items():
        sample = samples[name]
        assert sample.left.shape == sample.right.shape == (*shape, 3)
        valid = np.isfinite(sample.disparity)
        assert valid.mean() > 0.7  # tsukuba has an unknown border
        # Palette PNGs decoded through the palette (raw indices would give other values).
        assert (np.nanmin(sample.disparity), np.nanmax(sample.disparity)) == (low, high)
        assert 0.01 < sample.occlusion.mean() < 0.2
        assert not np.any(sample.occlusion & ~valid)


def test_middlebury2003_scores_only_the_official_region(stereo_eval):
    # venus's groundtruth.png covers a border that all.png, the region the official evaluation
    # scores, leaves out; nonocc.png leaves it out too, so it used to be scored as occluded.
    scene = stereo_eval / "middlebury2003" / "venus"
    [sample] = middlebury2003(scene)
    truth = cv2.imread(str(scene / "groundtruth.png"), cv2.IMREAD_GRAYSCALE) > 0
    region = cv2.imread(str(scene / "all.png"), cv2.IMREAD_GRAYSCALE) >= 128
    assert (truth.sum(), (truth & region).sum()) == (166_222, 150_282)
    np.testing.assert_array_equal(np.isfinite(sample.disparity), truth & region)
    assert not np.any(sample.occlusion & ~region)


def test_kitti2015_frame(stereo_eval):
    [sample] = list(kitti2015(stereo_eval / "kitti2015/000000_10"))
    assert sample.left.shape == (375, 1242, 3) and sample.disparity.shape == (375, 1242)
    density = np.isfinite(sample.disparity).mean()
    assert 0.1 < density < 0.5  # sparse LiDAR ground truth
    assert 0 < np.nanmin(sample.disparity) and np.nanmax(sample.disparity) < 256
    assert sample.occlusion is None  # no disp_noc_0 beside it


def test_eth3d_scene(stereo_eval):
    [sample] = list(eth3d(stereo_eval / "eth3d"))
    assert sample.left.shape[:2] == sample.disparity.shape == (490, 941)
    assert 0.4 < np.isfinite(sample.disparity).mean() < 0.6
    assert sample.occlusion is None


def test_stereo_eval_has_the_six_pairs(stereo_eval):
    names = [s.name for s in datasets.stereo_eval(stereo_eval)]
    assert names == ["middlebury2003/cones", "middlebury2003/teddy", "middlebury2003/tsukuba",
                     "middlebury2003/venus", "kitti2015/000000_10", "eth3d/playground"]


def _png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_kitti2012_layout(tmp_path, rng):
    root = tmp_path / "kitti2012" / "training"
    image = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    _png(root / "colored_0/000007_10.png", np.dstack([image] * 3))
    _png(root / "colored_1/000007_10.png", np.dstack([image] * 3))
    occ = np.zeros((40, 60), np.uint16)
    occ[10, 20], occ[11, 21] = 256 * 12 + 128, 256 * 30  # 12.5 px, 30 px
    noc = occ.copy()
    noc[11, 21] = 0  # occluded: only in disp_occ
    _png(root / "disp_occ/000007_10.png", occ)
    _png(root / "disp_noc/000007_10.png", noc)
    [sample] = list(kitti2012(tmp_path / "kitti2012"))
    assert sample.name == "kitti2012/000007_10"
    assert sample.disparity[10, 20] == 12.5 and sample.disparity[11, 21] == 30.0
    assert np.isfinite(sample.disparity).sum() == 2
    assert sample.occlusion.sum() == 1 and sample.occlusion[11, 21]


def test_middlebury2014_layout(tmp_path, rng):
    scene = tmp_path / "Motorcycle-perfect"
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    _png(scene / "im0.png", image)
    _png(scene / "im1.png", image)
    disparity = np.full((30, 40), 17.25, np.float32)
    disparity[0, :5] = np.inf
    write_pfm(scene / "disp0GT.pfm", disparity)
    mask = np.full((30, 40), 255, np.uint8)
    mask[5:7, 10:12] = 128
    mask[0, :5] = 0
    mask[20, 30] = 0  # known truth the mask does not call visible: not non-occluded, as officially
    _png(scene / "mask0nocc.png", mask)
    [sample] = list(middlebury2014(tmp_path))
    assert np.isnan(sample.disparity[0, :5]).all() and sample.disparity[1, 1] == 17.25
    assert sample.occlusion.sum() == 5 and sample.occlusion[5, 10] and sample.occlusion[20, 30]
    # The scene downloads name the truth disp0.pfm (MiddEval3 disp0GT.pfm).
    (scene / "disp0GT.pfm").rename(scene / "disp0.pfm")
    [again] = list(middlebury2014(tmp_path))
    np.testing.assert_array_equal(again.disparity, sample.disparity)


def test_sceneflow_layout(tmp_path, rng):
    frame = "TRAIN/A/0000"
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for side in ("left", "right"):
        _png(tmp_path / f"frames_cleanpass/{frame}/{side}/0006.png", image)
    (tmp_path / f"disparity/{frame}/left").mkdir(parents=True)
    write_pfm(tmp_path / f"disparity/{frame}/left/0006.pfm", np.full((20, 30), 3.5, np.float32))
    [sample] = list(sceneflow(tmp_path))
    assert sample.name == "sceneflow/TRAIN/A/0000/left/0006"
    assert sample.disparity.shape == (20, 30) and np.all(sample.disparity == 3.5)
    np.testing.assert_array_equal(sample.left, image[:, :, ::-1])  # written as BGR, read RGB


def test_a_folder_is_listed_without_reading_its_pairs(tmp_path, rng):
    # SceneFlow has tens of thousands of pairs: listing reads none, so evaluation and
    # fine-tuning hold one pair at a time; a damaged file shows when its pair is read.
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for frame in ("0006", "0007"):
        for side in ("left", "right"):
            _png(tmp_path / f"frames_cleanpass/TRAIN/A/0000/{side}/{frame}.png", image)
        (tmp_path / "disparity/TRAIN/A/0000/left").mkdir(parents=True, exist_ok=True)
        write_pfm(tmp_path / f"disparity/TRAIN/A/0000/left/{frame}.pfm",
                  np.full((20, 30), 3.5, np.float32))
    pairs = dataset_pairs("sceneflow", tmp_path)
    assert [p.name for p in pairs] == ["sceneflow/TRAIN/A/0000/left/0006",
                                       "sceneflow/TRAIN/A/0000/left/0007"]
    assert [p.disparity_range for p in pairs] == [192, 192]  # the literature's convention
    (tmp_path / "frames_cleanpass/TRAIN/A/0000/left/0007.png").write_bytes(b"not a png")
    assert pairs[0].load().disparity[0, 0] == 3.5
    with pytest.raises(InputError, match="cannot read image .*0007.png"):
        pairs[1].load()


def test_each_pair_carries_the_range_its_dataset_gives(stereo_eval):
    ranges = {p.name: p.disparity_range for p in dataset_pairs("middlebury2003",
                                                               stereo_eval / "middlebury2003")}
    # info.txt's max disparity plus one (the levels 0..max).
    assert ranges == {"middlebury2003/cones": 60, "middlebury2003/teddy": 60,
                      "middlebury2003/tsukuba": 16, "middlebury2003/venus": 20}
    [playground] = dataset_pairs("eth3d", stereo_eval / "eth3d")
    assert playground.disparity_range == 941  # calib.txt's ndisp, as written
    [frame] = dataset_pairs("kitti2015", stereo_eval / "kitti2015" / "000000_10")
    assert frame.disparity_range == 192


@pytest.mark.parametrize("kind, make, message", [
    ("kitti2015", lambda p: None, "does not exist"),
    ("kitti2015", lambda p: (p / "image_2").mkdir(parents=True),
     "is not in the kitti2015 layout: missing image_3, disp_occ_0"),
    ("middlebury2003", lambda p: (p / "imL.png").parent.mkdir(parents=True) or
     (p / "imL.png").write_bytes(b""), "missing imR.png, groundtruth.png, info.txt"),
    ("sceneflow", lambda p: (p / "frames_cleanpass").mkdir(parents=True),
     "is not in the SceneFlow layout: missing disparity"),
    ("eth3d", lambda p: p.mkdir(parents=True), "missing im0.png, im1.png, disp0.pfm"),
    ("kitti2016", lambda p: None, "unknown dataset kind 'kitti2016'"),
    # Frames not named as KITTI names them were skipped without a word (and training on such
    # a folder ended in 'high <= 0').
    ("kitti2015", lambda p: [(p / d).mkdir(parents=True) or (p / d / "frame0001.png").write_bytes(
        b"") for d in ("image_2", "image_3", "disp_occ_0")],
     "holds no <frame>_10.png image: KITTI names the frame that has ground truth"),
    ("middlebury2003", lambda p: p.mkdir(parents=True),
     "holds no Middlebury 2003 scene \\(a folder with imL.png, imR.png"),
])
def test_missing_or_foreign_layout_names_the_expected_files(tmp_path, kind, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(InputError, match=message):
        list(open_dataset(kind, root))
