"""The sample sheets of the training data (docs/training_*.png) build from the code as it is."""
from __future__ import annotations

import cv2

from stereo_depth_node.data.sample_sheets import main


def test_sample_sheets_are_written(tmp_path):
    main(str(tmp_path))
    scenes = cv2.imread(str(tmp_path / "training_scenes.png"))
    assert scenes.shape[0] > 6 * 128 and scenes.shape[1] > 4 * 256  # 6 rows of 4 tiles
    ground = cv2.imread(str(tmp_path / "training_ground.png"))
    assert ground.shape == scenes.shape and not (ground == scenes).all()
    small = cv2.imread(str(tmp_path / "training_small_range.png"))
    assert small.shape == scenes.shape and not (small == scenes).all()
    augmentation = cv2.imread(str(tmp_path / "training_augmentation.png"))
    assert augmentation.shape[0] > 8 * 128 and augmentation.shape[1] > 3 * 256
    assert cv2.imread(str(tmp_path / "training_textures.png")).shape[1] > 12 * 64
