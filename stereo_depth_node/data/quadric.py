"""Curved surfaces for the synthetic scenes: quadric patches in disparity space, intersected with
the pixel rays of either view in closed form.

The map (X, Y, Z) -> (x, y, d) = (f X / Z, f Y / Z, f B / Z) is projective, so a 3-D quadric
(sphere, cylinder, paraboloid) is a quadric in (x, y, d) as well and planes stay planes. A layer has
a base plane P(x, y) = d0 + b (x - cx) + c (y - cy), the normalised, rotated axes (u, v) of its
outline and the offset e = d - P(x, y); its surface is

    a_uu u^2 + a_vv v^2 + a_ee e^2 + a_e e + a_0 = 0.

A left pixel (x, y) sees the points (x, y, d); a right pixel (x_r, y) sees (x_r + d, y, d), because
x_r = x_l - d. Along either ray u, v and e are affine in d, so the surface is a quadratic in d and
both views are rendered exactly, with self-occlusion at the limbs of spheres and cylinders.
"""
from __future__ import annotations

import torch

SURFACES = ("plane", "ellipsoid", "cylinder", "paraboloid")


def coefficients(surface: torch.Tensor, height: torch.Tensor, curve_u: torch.Tensor,
                 curve_v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(a_uu, a_vv, a_ee, a_e, a_0) per layer. `height`: the bulge of an ellipsoid or cylinder
    towards the camera in px of disparity (its semi-axis along d), or the paraboloid's scale;
    `curve_u`, `curve_v` in [-1, 1] bend the paraboloid (opposite signs: a saddle)."""
    zero, one = torch.zeros_like(height), torch.ones_like(height)
    inverse_square = 1.0 / height.clamp(min=1e-3) ** 2
    rows = {  # a_uu, a_vv, a_ee, a_e, a_0
        0: (zero, zero, zero, one, zero),                              # e = 0
        1: (one, one, inverse_square, zero, -one),                     # u^2 + v^2 + (e/h)^2 = 1
        2: (one, zero, inverse_square, zero, -one),                    # u^2 + (e/h)^2 = 1
        3: (height * curve_u, height * curve_v, zero, -one, zero),     # e = h (ku u^2 + kv v^2)
    }
    return tuple(sum(torch.where(surface == kind, row[i], zero) for kind, row in rows.items())
                 for i in range(5))


def intersect(coeffs: tuple[torch.Tensor, ...], geometry: dict[str, torch.Tensor],
              x: torch.Tensor, y: torch.Tensor, right: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The two disparities (near >= far) where the ray of pixel (x, y) of the left or right view
    meets the surface; -inf where it does not. `geometry` holds cx, cy, angle, rx, ry, d0, b, c,
    each broadcastable to x."""
    a_uu, a_vv, a_ee, a_e, a_0 = coeffs
    g = geometry
    cos, sin = torch.cos(g["angle"]), torch.sin(g["angle"])
    dx, dy = x - g["cx"], y - g["cy"]
    shift = 1.0 if right else 0.0  # d/dd of the surface point's left x along the ray
    u0, u1 = (dx * cos + dy * sin) / g["rx"], shift * cos / g["rx"]
    v0, v1 = (-dx * sin + dy * cos) / g["ry"], -shift * sin / g["ry"]
    e0, e1 = -(g["d0"] + g["b"] * dx + g["c"] * dy), 1.0 - shift * g["b"]
    alpha = a_uu * u1 * u1 + a_vv * v1 * v1 + a_ee * e1 * e1
    beta = 2 * (a_uu * u0 * u1 + a_vv * v0 * v1 + a_ee * e0 * e1) + a_e * e1
    gamma = a_uu * u0 * u0 + a_vv * v0 * v0 + a_ee * e0 * e0 + a_e * e0 + a_0
    discriminant = beta * beta - 4 * alpha * gamma
    # Stable roots: q / alpha and gamma / q; with alpha = 0 (planes) the second is the linear
    # root -gamma / beta and the first is infinite, hence dropped.
    sign = torch.where(beta >= 0, 1.0, -1.0)
    q = -0.5 * (beta + sign * discriminant.clamp(min=0).sqrt())
    roots = torch.stack([q / alpha, gamma / q])
    roots = torch.where(torch.isfinite(roots) & (discriminant >= 0), roots, -torch.inf)
    return roots.max(dim=0).values, roots.min(dim=0).values
