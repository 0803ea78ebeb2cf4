"""Readers for the public stereo datasets, in their published layouts and encodings.

Every reader yields StereoSample: left/right images (uint8/uint16, RGB or mono), disparity as
float32 px with NaN where there is no ground truth, and an occlusion mask (True = visible in the
left view only) where the dataset has one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..images import read_image
from .pfm import read_pfm


@dataclass
class StereoSample:
    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    occlusion: np.ndarray | None = None


def _require(folder: Path, names: list[str], layout: str) -> None:
    if not folder.is_dir():
        raise InputError(f"dataset folder {os.fspath(folder)!r} does not exist")
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise InputError(f"{os.fspath(folder)!r} is not in the {layout} layout: missing "
                         f"{', '.join(missing)} (expected {', '.join(names)})")


def _gray(path: Path) -> np.ndarray:
    # IMREAD_GRAYSCALE decodes palette PNGs through their palette (Middlebury ground truth).
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"cannot read {os.fspath(path)!r}")
    return image


def _positive_or_nan(disparity: np.ndarray) -> np.ndarray:
    return np.where(disparity > 0, disparity, np.nan).astype(np.float32)


def _finite_or_nan(disparity: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)


# --- KITTI ---------------------------------------------------------------------------------------
def _kitti_png(path: Path) -> np.ndarray:
    raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        raise InputError(f"{os.fspath(path)!r} is not a KITTI 16-bit disparity PNG")
    return _positive_or_nan(raw.astype(np.float32) / 256.0)


def _kitti(root: Path, left: str, right: str, occ: str, noc: str, layout: str
           ) -> Iterator[StereoSample]:
    base = root / "training" if (root / "training" / left).is_dir() else root
    _require(base, [left, right, occ], layout)
    frames = sorted((base / left).glob("*_10.png"))
    if not frames:
        raise InputError(f"{os.fspath(base / left)!r} holds no <frame>_10.png image: KITTI names "
                         f"the frame that has ground truth <frame>_10.png")
    for left_path in frames:
        name = left_path.name
        disparity = _kitti_png(base / occ / name)
        occlusion = None
        if (base / noc / name).exists():
            visible = np.isfinite(_kitti_png(base / noc / name))
            occlusion = np.isfinite(disparity) & ~visible
        yield StereoSample(f"{layout}/{name[:-4]}", read_image(left_path),
                           read_image(base / right / name), disparity, occlusion)


def kitti2012(root: str | os.PathLike) -> Iterator[StereoSample]:
    """colored_0 / colored_1 / disp_occ / disp_noc (uint16 PNG, d * 256, 0 = none)."""
    return _kitti(Path(root), "colored_0", "colored_1", "disp_occ", "disp_noc", "kitti2012")


def kitti2015(root: str | os.PathLike) -> Iterator[StereoSample]:
    """image_2 / image_3 / disp_occ_0 / disp_noc_0 (uint16 PNG, d * 256, 0 = none)."""
    return _kitti(Path(root), "image_2", "image_3", "disp_occ_0", "disp_noc_0", "kitti2015")


# --- Middlebury ----------------------------------------------------------------------------------
def middlebury2003(root: str | os.PathLike) -> Iterator[StereoSample]:
    """Middlebury 2001-2006 scenes: imL/imR, groundtruth.png / scale from info.txt line 1,
    all.png (255 = the region the official evaluation scores; outside it the truth is not used),
    nonocc.png (255 = visible in both views). `root` is a scene or a folder of scenes."""
    root = Path(root)
    scenes = [root] if (root / "imL.png").exists() else sorted(
        p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [root]
    if not scenes:
        # The official downloads name the views view1/view5 and the truth disp1: repackaged
        # (imL, imR, groundtruth, info.txt with the scale) as the LocalExpStereo copy has them.
        raise InputError(f"{os.fspath(root)!r} holds no Middlebury 2003 scene (a folder with "
                         f"imL.png, imR.png, groundtruth.png, info.txt)")
    for scene in scenes:
        _require(scene, ["imL.png", "imR.png", "groundtruth.png", "info.txt"], "Middlebury 2003")
        try:
            scale = float((scene / "info.txt").read_text().split()[0])
        except (IndexError, ValueError) as exc:
            raise InputError(f"{os.fspath(scene / 'info.txt')!r}: first value must be the "
                             f"disparity scale") from exc
        disparity = _positive_or_nan(_gray(scene / "groundtruth.png").astype(np.float32) / scale)
        if (scene / "all.png").exists():
            # venus's truth covers a border the official evaluation leaves out; scored, it
            # also counted as occluded, since nonocc.png leaves it out too.
            disparity[_gray(scene / "all.png") < 128] = np.nan
        occlusion = None
        if (scene / "nonocc.png").exists():
            occlusion = np.isfinite(disparity) & (_gray(scene / "nonocc.png") < 128)
        yield StereoSample(f"middlebury2003/{scene.name}", read_image(scene / "imL.png"),
                           read_image(scene / "imR.png"), disparity, occlusion)


def _two_view(scene: Path, disparity_name: str, layout: str, name: str) -> StereoSample:
    _require(scene, ["im0.png", "im1.png", disparity_name], layout)
    disparity = _finite_or_nan(read_pfm(scene / disparity_name))
    occlusion = None
    if (scene / "mask0nocc.png").exists():
        mask = _gray(scene / "mask0nocc.png")  # 255 visible, 128 occluded, 0 unknown
        occlusion = np.isfinite(disparity) & (mask == 128)
    return StereoSample(name, read_image(scene / "im0.png"), read_image(scene / "im1.png"),
                        disparity, occlusion)


def _scenes(root: Path, marker: str) -> list[Path]:
    if (root / marker).exists():
        return [root]
    if not root.is_dir():
        raise InputError(f"dataset folder {os.fspath(root)!r} does not exist")
    return sorted(p for p in root.iterdir() if (p / marker).exists()) or [root]


def middlebury2014(root: str | os.PathLike) -> Iterator[StereoSample]:
    """im0/im1, disp0GT.pfm (inf = unknown), mask0nocc.png; a scene or a folder of scenes."""
    for scene in _scenes(Path(root), "im0.png"):
        yield _two_view(scene, "disp0GT.pfm", "Middlebury 2014", f"middlebury2014/{scene.name}")


def eth3d(root: str | os.PathLike) -> Iterator[StereoSample]:
    """ETH3D two-view: im0/im1, disp0GT.pfm (or disp0.pfm), mask0nocc.png when present."""
    for scene in _scenes(Path(root), "im0.png"):
        name = "disp0GT.pfm" if (scene / "disp0GT.pfm").exists() else "disp0.pfm"
        yield _two_view(scene, name, "ETH3D two-view", f"eth3d/{scene.name}")


# --- SceneFlow -----------------------------------------------------------------------------------
def sceneflow(root: str | os.PathLike, passes: str = "cleanpass") -> Iterator[StereoSample]:
    """FlyingThings3D / Monkaa / Driving: frames_<pass>/**/left/*.png with
    disparity/**/left/*.pfm at the same relative path."""
    root = Path(root)
    frames = root / f"frames_{passes}"
    _require(root, [f"frames_{passes}", "disparity"], "SceneFlow")
    lefts = sorted(frames.rglob("left/*.png"))
    if not lefts:
        raise InputError(f"{os.fspath(frames)!r} holds no */left/*.png images")
    for left_path in lefts:
        relative = left_path.relative_to(frames)
        right_path = left_path.parent.parent / "right" / left_path.name
        disparity_path = (root / "disparity" / relative).with_suffix(".pfm")
        if not right_path.exists() or not disparity_path.exists():
            raise InputError(f"SceneFlow frame {relative} lacks {right_path.name} in right/ or "
                             f"{disparity_path.relative_to(root)}")
        yield StereoSample(f"sceneflow/{relative.with_suffix('')}", read_image(left_path),
                           read_image(right_path), _finite_or_nan(read_pfm(disparity_path)))


READERS: dict[str, Callable[[str | os.PathLike], Iterator[StereoSample]]] = {
    "sceneflow": sceneflow, "kitti2012": kitti2012, "kitti2015": kitti2015,
    "middlebury2003": middlebury2003, "middlebury2014": middlebury2014, "eth3d": eth3d,
}


def open_dataset(kind: str, root: str | os.PathLike) -> Iterator[StereoSample]:
    if kind not in READERS:
        raise InputError(f"unknown dataset kind {kind!r}; known: {', '.join(READERS)}")
    return READERS[kind](root)


def stereo_eval(root: str | os.PathLike) -> Iterator[StereoSample]:
    """The project's evaluation set (../shared/data/stereo_eval): Middlebury 2003, KITTI 2015 and
    ETH3D pairs, each read by its dataset's reader."""
    root = Path(root)
    _require(root, ["middlebury2003", "kitti2015", "eth3d"], "stereo_eval")
    yield from middlebury2003(root / "middlebury2003")
    for frame in sorted(p for p in (root / "kitti2015").iterdir() if p.is_dir()):
        yield from kitti2015(frame)
    yield from eth3d(root / "eth3d")
