"""The verdict docs/paper_comparison.md gives on the paper's occlusion claim, on hand-built
evaluations whose sign-test values are worked out by hand."""
import pytest

from stereo_depth_node.paper_comparison import sign_test_p, verdict


def _methods(occluded: list[tuple[float, float]], visible: list[tuple[float, float]],
             unmasked: int = 0) -> dict:
    """An evaluation of psmnet and psmnet_dws: per image (psmnet, psmnet_dws) bad-3 on occluded
    and non-occluded pixels, plus `unmasked` images without an occlusion mask."""
    images: dict[str, dict] = {"psmnet": {}, "psmnet_dws": {}}
    for index, (occ, noc) in enumerate(zip(occluded, visible)):
        for model, column in (("psmnet", 0), ("psmnet_dws", 1)):
            images[model][f"image{index}"] = {"all": {"bad3": 1.0}, "occ": {"bad3": occ[column]},
                                              "noc": {"bad3": noc[column]}}
    for index in range(unmasked):
        for model in images:
            images[model][f"kitti{index}"] = {"all": {"bad3": 5.0}}
    return {model: {"images": per_image} for model, per_image in images.items()}


@pytest.mark.parametrize("lower, higher, expected", [
    (0, 0, 1.0),
    (5, 6, 1.0),               # 2 * (1 + 11 + 55 + 165 + 330 + 462) / 2**11 = 1
    (10, 2, 2 * 79 / 4096),    # 2 * (1 + 12 + 66) / 2**12
    (0, 6, 2 / 64),            # 2 * 1 / 2**6
    (8, 0, 2 / 256),
])
def test_sign_test_matches_hand_derived_values(lower, higher, expected):
    assert sign_test_p(lower, higher) == pytest.approx(expected)


def test_one_image_cannot_carry_the_claim():
    # The 2026-11-27 Middlebury pattern: psmnet_dws far better on one image and a little worse
    # on three, so its dataset mean is lower while the images split 1 to 3.
    text = verdict(_methods(occluded=[(45.6, 26.0), (60.1, 64.4), (65.1, 69.2), (29.1, 29.8)],
                            visible=[(23.9, 13.7), (17.0, 14.9), (18.6, 14.1), (17.4, 13.6)],
                            unmasked=2))
    assert "on occluded pixels, lower on 1 of 4 images, higher on 3" in text
    assert "p = 0.62" in text                      # 2 * (1 + 4) / 16
    assert "on non-occluded pixels, lower on 4 of 4 images, higher on 0" in text
    assert "is not shown here" in text


def test_a_consistent_win_on_occluded_pixels_holds():
    pairs = [(50.0 + i, 40.0 + i) for i in range(8)]
    text = verdict(_methods(occluded=pairs, visible=pairs))
    assert "lower on 8 of 8 images, higher on 0 (two-sided sign test p = 0.01)" in text
    assert text.endswith("in occluded regions holds here.")


def test_a_consistent_loss_is_reported_as_such():
    pairs = [(40.0 + i, 50.0 + i) for i in range(6)]
    text = verdict(_methods(occluded=pairs, visible=pairs))
    assert "lower on 0 of 6 images, higher on 6" in text
    assert "does not hold here: psmnet is better" in text


def test_ties_at_the_printed_precision_are_counted_apart():
    text = verdict(_methods(occluded=[(79.02, 78.98), (10.0, 9.0)], visible=[(1, 1), (1, 1)]))
    assert "lower on 1 of 2 images, higher on 0, equal on 1" in text


def test_without_occlusion_masks_nothing_is_judged():
    assert "cannot be judged here" in verdict(_methods([], [], unmasked=3))
