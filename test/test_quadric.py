"""Curved surfaces: closed-form ray intersections that agree with hand-derived disparities and
between the two views."""
from __future__ import annotations

import math

import pytest
import torch

from stereo_depth_node.data.quadric import SURFACES, coefficients, intersect


def layer(surface: str, height: float = 8.0, curve_u: float = 0.0, curve_v: float = 0.0,
          **geometry: float) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    values = dict(cx=50.0, cy=40.0, angle=0.0, rx=20.0, ry=20.0, d0=30.0, b=0.0, c=0.0)
    values.update(geometry)
    coeffs = coefficients(torch.tensor(float(SURFACES.index(surface))), torch.tensor(height),
                          torch.tensor(curve_u), torch.tensor(curve_v))
    return coeffs, {k: torch.tensor(v) for k, v in values.items()}


def near(coeffs, geometry, x: float, y: float, right: bool) -> float:
    return float(intersect(coeffs, geometry, torch.tensor(x), torch.tensor(y), right)[0])


def test_sphere_disparity_at_its_centre_and_rim():
    coeffs, geometry = layer("ellipsoid", height=8.0)
    # Left view: d = d0 + h sqrt(1 - u^2 - v^2).
    assert near(coeffs, geometry, 50.0, 40.0, right=False) == pytest.approx(38.0, abs=1e-4)
    assert near(coeffs, geometry, 62.0, 40.0, right=False) == pytest.approx(
        30 + 8 * math.sqrt(1 - 0.6 ** 2), abs=1e-4)
    assert near(coeffs, geometry, 50.0, 61.0, right=False) == -math.inf  # outside the silhouette
    # The right view sees the apex (x_l = 50, d = 38) at x_r = 50 - 38 = 12. Along that ray
    # (12 + d, 40, d), with s = d - 38: s^2 / 400 + (s + 8)^2 / 64 = 1, so s = 0 (the apex, in
    # front) or s = -0.25 / (1/400 + 1/64) (the back of the sphere).
    front, back = intersect(coeffs, geometry, torch.tensor(12.0), torch.tensor(40.0), True)
    assert float(front) == pytest.approx(38.0, abs=1e-4)
    assert float(back) == pytest.approx(38.0 - 0.25 / (1 / 400 + 1 / 64), abs=1e-3)


def test_plane_matches_the_closed_form_of_the_planar_generator():
    coeffs, geometry = layer("plane", b=0.1, c=-0.05)
    x, y = 70.0, 25.0
    assert near(coeffs, geometry, x, y, right=False) == pytest.approx(
        30 + 0.1 * 20 - 0.05 * (-15), abs=1e-4)
    # Right view: x_l = (x + d0 - b cx + c (y - cy)) / (1 - b), d = x_l - x.
    x_left = (x + 30 - 0.1 * 50 - 0.05 * (y - 40)) / (1 - 0.1)
    assert near(coeffs, geometry, x, y, right=True) == pytest.approx(x_left - x, abs=1e-3)


def test_cylinder_is_curved_across_its_axis_only():
    coeffs, geometry = layer("cylinder", height=6.0, angle=0.0)  # axis along y
    along = [near(coeffs, geometry, 50.0, y, right=False) for y in (10.0, 40.0, 90.0)]
    assert along == pytest.approx([36.0] * 3, abs=1e-4)
    assert near(coeffs, geometry, 60.0, 40.0, right=False) == pytest.approx(
        30 + 6 * math.sqrt(0.75), abs=1e-4)


def test_saddle_rises_along_u_and_falls_along_v():
    coeffs, geometry = layer("paraboloid", height=4.0, curve_u=1.0, curve_v=-1.0)
    assert near(coeffs, geometry, 60.0, 40.0, right=False) == pytest.approx(31.0, abs=1e-4)
    assert near(coeffs, geometry, 50.0, 50.0, right=False) == pytest.approx(29.0, abs=1e-4)


@pytest.mark.parametrize("surface", ["ellipsoid", "cylinder", "paraboloid"])
def test_right_view_sees_the_points_the_left_view_sees(surface):
    """For every right pixel that hits the surface, the left pixel x_l = x_r + d sees a surface
    point of the same disparity (the ray of a view meets the surface where the other one does)."""
    coeffs, geometry = layer(surface, height=6.0, curve_u=0.7, curve_v=-0.4, angle=0.6,
                             rx=25.0, ry=15.0, b=0.05, c=0.02)
    x = torch.linspace(0, 100, 401)
    y = torch.full_like(x, 44.0)
    for root in intersect(coeffs, geometry, x, y, right=True):
        hit = torch.isfinite(root)
        assert hit.sum() > 20
        left_near, left_far = intersect(coeffs, geometry, x[hit] + root[hit], y[hit],
                                        right=False)
        error = torch.minimum((left_near - root[hit]).abs(), (left_far - root[hit]).abs())
        assert error.max() < 5e-3  # float32, px
