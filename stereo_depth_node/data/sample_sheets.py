"""Sample sheets of the training data (PNG), to look at what the network is trained on:
`python -m stereo_depth_node.data.sample_sheets docs/` writes

- training_scenes.png: rich scenes (left, right, disparity, occlusion), one per row;
- training_ground.png: the same for rich scenes that all have a ground plane (`ground_share`);
- training_small_range.png: the same scenes as training_scenes.png with every disparity scaled
  down (`small_range_share`), disparity in the same colour scale;
- training_textures.png: the texture bank of the rich generator;
- training_augmentation.png: one augmentation per row on the same pair (left, right, disparity).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from ..images import unit_float_to_uint8
from .augment import AugmentConfig, StereoAugmenter, erase, misalign, scale_pair
from .generator import GeneratorConfig, StereoBatch, SyntheticStereo
from .jpeg import jpeg_compress

SIZE = (128, 256)
MAX_DISPARITY = 64


def _rgb(image: torch.Tensor) -> np.ndarray:
    return unit_float_to_uint8(image.permute(1, 2, 0).cpu().numpy())


def _disparity(disparity: torch.Tensor) -> np.ndarray:
    scaled = (disparity.clamp(0, MAX_DISPARITY) / MAX_DISPARITY * 255).cpu().numpy()
    return cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]


def _occlusion(occlusion: torch.Tensor) -> np.ndarray:
    return np.repeat((occlusion.cpu().numpy()[..., None] * 255).astype(np.uint8), 3, axis=2)


def _grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    height = max(tile.shape[0] for row in rows for tile in row)
    lines = []
    for row in rows:
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, gap), (0, 0)), constant_values=255)
                  for t in row]
        lines.append(np.pad(np.concatenate(padded, axis=1), ((0, gap), (0, 0), (0, 0)),
                            constant_values=255))
    width = max(line.shape[1] for line in lines)
    return np.concatenate([np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)),
                                  constant_values=255) for line in lines])


def _write(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image[..., ::-1])


def scenes_sheet(count: int = 6, ground_share: float = 0.0, small_range_share: float = 0.0
                 ) -> np.ndarray:
    generator = SyntheticStereo(GeneratorConfig(height=SIZE[0], width=SIZE[1],
                                                max_disparity=MAX_DISPARITY, rich=True,
                                                ground_share=ground_share,
                                                small_range_share=small_range_share), seed=0)
    batch = generator.batch(0, count)
    return _grid([[_rgb(batch.left[i]), _rgb(batch.right[i]), _disparity(batch.disparity[i]),
                   _occlusion(batch.occlusion[i])] for i in range(count)])


def textures_sheet(per_row: int = 12, tile: int = 64) -> np.ndarray:
    generator = SyntheticStereo(GeneratorConfig(height=SIZE[0], width=SIZE[1],
                                                max_disparity=MAX_DISPARITY, rich=True), seed=0)
    tiles = [cv2.resize(_rgb(t), (tile, tile), interpolation=cv2.INTER_AREA)
             for t in generator.textures]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    return _grid([tiles[i:i + per_row] for i in range(0, len(tiles), per_row)], gap=2)


def augmentation_sheet() -> np.ndarray:
    generator = SyntheticStereo(GeneratorConfig(height=SIZE[0], width=SIZE[1],
                                                max_disparity=MAX_DISPARITY, rich=True), seed=0)
    plain = generator.batch(3, 1)
    one = lambda t: t.view(1)  # noqa: E731
    variants: list[StereoBatch] = [
        plain,
        scale_pair(plain, 1.3, 1.3, 20, 40),
        StereoBatch(plain.left, misalign(plain.right, one(torch.tensor(1.0)),
                                         one(torch.tensor(0.2))), plain.disparity,
                    plain.occlusion),
        StereoBatch(plain.left, erase(plain.right, [[(30, 60, 40, 50), (70, 150, 30, 60)]]),
                    plain.disparity, plain.occlusion),
        StereoBatch(jpeg_compress(plain.left, 15), jpeg_compress(plain.right, 60),
                    plain.disparity, plain.occlusion),
    ]
    augmenter = StereoAugmenter(0, AugmentConfig())
    variants += [augmenter(plain, step) for step in range(3)]
    return _grid([[_rgb(v.left[0]), _rgb(v.right[0]), _disparity(v.disparity[0])]
                  for v in variants])


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, sheet in (("training_scenes", scenes_sheet),
                        ("training_ground", lambda: scenes_sheet(ground_share=1.0)),
                        ("training_small_range", lambda: scenes_sheet(small_range_share=1.0)),
                        ("training_textures", textures_sheet),
                        ("training_augmentation", augmentation_sheet)):
        _write(out / f"{name}.png", sheet())
        print(f"wrote {out / name}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
