"""Procedural, occlusion-rich stereo pairs with dense ground truth, rendered in batches on torch.

A scene is a slanted background plane plus 5-30 foreground surfaces (ellipses, rotated rectangles,
thin bars, blobs), each a textured plane d(x, y) = d0 + b (x - cx) + c (y - cy) in left-view
disparity. Both views are rendered with a z-buffer (larger disparity = nearer), so occlusions are
physically right: a left pixel is occluded when the surface it sees is hidden, or out of frame, in
the right view. Everything is deterministic given (seed, batch index) and runs on any torch device.

`rich=True` adds what the stereo literature found to transfer from synthetic to real images
(docs/training_notes.md): curved surfaces (ellipsoids, cylinders, paraboloids and saddles, see
quadric.py), wires 1-2 px wide, textureless flat patches, specular highlights that saturate and sit
at a view-dependent place on the surface, far backgrounds at near-zero disparity, and natural-photo
textures under random perspective and scale. The default stays the plain planar generator, so the
fixed synthetic test set of `stereo-depth eval` does not change.

`ground_share` (rich scenes only) turns layer 1 of that share of the scenes into a ground plane: the
disparity rises linearly from zero at a horizon row to up to the range at the bottom row, as a
camera above a floor or road sees it, under a far background, with its texture in the matching
perspective. At 0 no number is drawn for it, so the rich stream stays as it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..images import unit_float_to_uint8
from .quadric import SURFACES, coefficients, intersect
from .textures import NATURAL_TEXTURES, flat_textures, image_textures, procedural_textures

SHAPES = ("ellipse", "rectangle", "bar", "blob")


@dataclass
class GeneratorConfig:
    height: int = 256
    width: int = 512
    max_disparity: int = 192
    min_layers: int = 5
    max_layers: int = 30
    photometric: bool = True
    procedural_textures: int = 40
    rich: bool = False
    ground_share: float = 0.0  # share of rich scenes with a ground plane
    small_range_share: float = 0.0  # share of scenes with every disparity scaled down


# Rich scenes: share of foreground layers that are curved, of bars that are wires, of samples with
# a far (near-zero disparity) background, and highlights per sample at most.
CURVED_SHARE, WIRE_SHARE, FAR_SHARE, MAX_HIGHLIGHTS = 0.35, 0.5, 0.3, 3
# Small-range scenes: the factor on every disparity, so that at max_disparity 64 a scene spans
# about 10-32 px, the ranges of Middlebury 2001's tsukuba and venus and of distant scenes.
SMALL_RANGE_SCALE = (0.15, 0.5)
FLAT_TEXTURES = 16


@dataclass
class StereoBatch:
    left: torch.Tensor        # B x 3 x H x W in [0, 1]
    right: torch.Tensor       # B x 3 x H x W in [0, 1]
    disparity: torch.Tensor   # B x H x W, left view, px
    occlusion: torch.Tensor   # B x H x W bool: visible in the left view only

    def images_uint8(self) -> tuple[np.ndarray, np.ndarray]:
        """Left and right as B x H x W x 3 uint8 arrays, as a camera would deliver them."""
        return tuple(unit_float_to_uint8(views.permute(0, 2, 3, 1).cpu().numpy())
                     for views in (self.left, self.right))


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float,
             device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device) * (high - low) + low


def _param(params: dict[str, torch.Tensor], name: str, layer: int) -> torch.Tensor:
    """Per-sample value of one layer parameter, shaped to broadcast over B x H x W."""
    return params[name][:, layer].view(-1, 1, 1)


class SyntheticStereo:
    """Callable batch source: `generator.batch(index, batch_size)` gives one StereoBatch."""

    def __init__(self, config: GeneratorConfig, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.config = config
        self.seed = seed
        self.device = torch.device(device)
        bank_generator = torch.Generator().manual_seed(seed)
        bank = [image_textures(NATURAL_TEXTURES if config.rich else None),
                procedural_textures(config.procedural_textures, bank_generator)]
        if config.rich:
            bank.append(flat_textures(FLAT_TEXTURES, bank_generator))
        self.textures = torch.cat(bank).to(self.device)

    def batch(self, index: int, batch_size: int) -> StereoBatch:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return self._render(generator, batch_size)

    # --- scene sampling -------------------------------------------------------------------------
    def _sample_layers(self, generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        cfg, dev = self.config, self.device
        height, width, dmax = cfg.height, cfg.width, float(cfg.max_disparity)
        layers = cfg.max_layers + 1
        shape = (batch, layers)
        u = lambda low, high: _uniform(generator, shape, low, high, dev)  # noqa: E731
        centre_x, centre_y = u(0, width), u(0, height)
        size = min(height, width)
        # Log-uniform sizes: many small and thin surfaces, a few large ones.
        radius_x = size * torch.exp(u(math.log(0.03), math.log(0.45)))
        radius_y = radius_x * torch.exp(u(math.log(0.3), math.log(3.0)))
        kind = torch.randint(0, len(SHAPES), shape, generator=generator).to(dev)
        thin = kind == SHAPES.index("bar")
        radius_y = torch.where(thin, u(1.0, 4.0), radius_y)
        radius_x = torch.where(thin, size * u(0.15, 0.6), radius_x)
        disparity = u(0.08 * dmax, 0.92 * dmax)
        extent = torch.maximum(radius_x, radius_y)
        slope_limit = 0.08 * dmax / extent.clamp(min=1.0)
        slope_x = u(-1, 1) * slope_limit.clamp(max=0.2)
        slope_y = u(-1, 1) * slope_limit.clamp(max=0.2)
        # Layer 0 is the background: whole image, far away, gently slanted.
        centre_x[:, 0], centre_y[:, 0] = width / 2, height / 2
        disparity[:, 0] = _uniform(generator, (batch,), 0.03 * dmax, 0.3 * dmax, dev)
        bg_variation = torch.minimum(disparity[:, 0] - 1.0, torch.full_like(disparity[:, 0],
                                                                              0.1 * dmax))
        slope_x[:, 0] = _uniform(generator, (batch,), -1, 1, dev) * bg_variation / width
        slope_y[:, 0] = _uniform(generator, (batch,), -1, 1, dev) * bg_variation / height
        count = torch.randint(cfg.min_layers, cfg.max_layers + 1, (batch,), generator=generator)
        enabled = torch.arange(layers)[None, :] <= count[:, None]
        texture = torch.randint(0, len(self.textures), shape, generator=generator).to(dev)
        params = {"cx": centre_x, "cy": centre_y, "rx": radius_x, "ry": radius_y, "kind": kind,
                  "angle": u(0, math.pi), "wobble": u(0.1, 0.35),
                  "lobes": torch.randint(3, 8, shape, generator=generator).to(dev).float(),
                  "d0": disparity, "b": slope_x, "c": slope_y, "enabled": enabled.to(dev),
                  "texture": texture, "tex_scale": torch.exp(u(math.log(0.6), math.log(2.5))),
                  "tex_angle": u(0, 2 * math.pi), "tex_x": u(0, 1000), "tex_y": u(0, 1000)}
        if cfg.rich:  # drawn after the plain parameters, so the plain stream stays as it was
            params.update(self._sample_rich(generator, params))
            if cfg.ground_share > 0:
                params.update(self._sample_ground(generator, params))
        if cfg.small_range_share > 0:  # drawn last: the other streams stay as they were
            params.update(self._sample_small_range(generator, params))
        return params

    def _sample_small_range(self, generator: torch.Generator, p: dict[str, torch.Tensor]
                            ) -> dict[str, torch.Tensor]:
        """In `small_range_share` of the scenes every disparity is multiplied by one factor in
        SMALL_RANGE_SCALE: the same outlines and depth order, as seen from farther away or with
        a shorter baseline, so the scene spans a small range."""
        batch, dev = p["d0"].shape[0], self.device
        chosen = _uniform(generator, (batch,), 0, 1, dev) < self.config.small_range_share
        factor = torch.where(chosen, _uniform(generator, (batch,), *SMALL_RANGE_SCALE, dev),
                             torch.ones(batch, device=dev)).view(-1, 1)
        # "height" (rich scenes) is a curved surface's bulge, also in px of disparity.
        return {name: p[name] * factor for name in ("d0", "b", "c", "height") if name in p}

    def _sample_rich(self, generator: torch.Generator, p: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
        cfg, dev = self.config, self.device
        batch, layers = p["d0"].shape
        u = lambda low, high, shape=(batch, layers): _uniform(  # noqa: E731
            generator, shape, low, high, dev)
        curved = u(0, 1) < CURVED_SHARE
        curved[:, 0] = False  # the background stays a plane
        surface = torch.where(curved, torch.randint(1, len(SURFACES), (batch, layers),
                                                    generator=generator).to(dev), 0)
        # Bulges towards the camera of up to 0.6 x the smaller radius (a real sphere's is about
        # rx * d / f, smaller; larger ones add steep slopes and self-occlusion); paraboloids bend
        # by at most 0.2 x the radius, so their slope mostly stays below 1.
        radius = torch.minimum(p["rx"], p["ry"])
        room = (0.97 * cfg.max_disparity - p["d0"]).clamp(min=0.5)
        bulge = torch.minimum(radius * u(0.05, 0.6), room).clamp(min=0.5)
        bend = radius * u(0.03, 0.2)
        height = torch.where(surface == SURFACES.index("paraboloid"), bend, bulge)
        wire = (p["kind"] == SHAPES.index("bar")) & (u(0, 1) < WIRE_SHARE)
        far = u(0, 1, (batch,)) < FAR_SHARE
        d0, b, c = p["d0"].clone(), p["b"].clone(), p["c"].clone()
        d0[:, 0] = torch.where(far, u(0.1, 1.0, (batch,)), d0[:, 0])
        b[:, 0], c[:, 0] = torch.where(far, 0.0, b[:, 0]), torch.where(far, 0.0, c[:, 0])
        highlights = (batch, MAX_HIGHLIGHTS)
        return {"surface": surface, "height": height, "curve_u": u(-1, 1), "curve_v": u(-1, 1),
                "ry": torch.where(wire, u(0.5, 1.2), p["ry"]), "d0": d0, "b": b, "c": c,
                "tex_scale": torch.exp(u(math.log(0.3), math.log(4.0))),
                "tex_g": u(-0.6, 0.6), "tex_h": u(-0.6, 0.6),
                "spot_on": u(0, 1, highlights) < 0.25, "spot_x": u(0, cfg.width, highlights),
                "spot_y": u(0, cfg.height, highlights),
                "spot_radius": torch.exp(u(math.log(2.0), math.log(16.0), highlights)),
                "spot_gain": u(0.5, 2.0, highlights), "spot_shift": u(-6.0, 6.0, highlights)}

    def _sample_ground(self, generator: torch.Generator, p: dict[str, torch.Tensor]
                       ) -> dict[str, torch.Tensor]:
        """Layer 1 becomes, in `ground_share` of the scenes, the plane d = slope (y - horizon)
        below the horizon row (-0.4 to 0.6 of the height: a camera looking down sees no
        horizon), reaching 35-95 % of the range at the bottom row; the background behind it
        is far. The texture's homography has its vanishing line at the horizon as well."""
        cfg, dev = self.config, self.device
        batch, layers = p["d0"].shape
        u = lambda low, high: _uniform(generator, (batch,), low, high, dev)  # noqa: E731
        ground = u(0, 1) < cfg.ground_share
        height, width, dmax = float(cfg.height), float(cfg.width), float(cfg.max_disparity)
        horizon = u(-0.4, 0.6) * height
        slope = u(0.35, 0.95) * dmax / (height - horizon)
        far_disparity = u(0.1, 1.0)
        top = horizon + 0.5 / slope  # where the ground's disparity reaches 0.5 px
        bottom = 2 * height  # past the last row
        # The right view sees surface points up to x + range, so the outline reaches past both
        # image borders by more than that.
        reach = width + dmax
        out = {name: p[name].clone() for name in (
            "d0", "b", "c", "cx", "cy", "rx", "ry", "angle", "kind", "surface", "enabled",
            "tex_g", "tex_h")}
        out["tex_w"] = torch.ones_like(p["d0"])

        def put(name: str, layer: int, value: torch.Tensor | float) -> None:
            column = out[name][:, layer]
            out[name][:, layer] = torch.where(ground, torch.as_tensor(
                value, dtype=column.dtype, device=dev), column)

        # The texture weight is w = (y - horizon) / (height - horizon): 1 at the bottom row, 0 at
        # the horizon, i.e. w = tex_w + tex_h (y / height - 0.5) with the values below.
        for name, layer, value in (
                ("d0", 0, far_disparity), ("b", 0, 0.0), ("c", 0, 0.0),
                ("kind", 1, SHAPES.index("rectangle")), ("surface", 1, SURFACES.index("plane")),
                ("enabled", 1, True), ("angle", 1, 0.0),
                ("cx", 1, width / 2), ("rx", 1, reach), ("cy", 1, (top + bottom) / 2),
                ("ry", 1, (bottom - top) / 2), ("b", 1, 0.0), ("c", 1, slope),
                ("d0", 1, slope * ((top + bottom) / 2 - horizon)),
                ("tex_g", 1, 0.0), ("tex_h", 1, height / (height - horizon)),
                ("tex_w", 1, (height / 2 - horizon) / (height - horizon))):
            put(name, layer, value)
        return out

    # --- rendering ------------------------------------------------------------------------------
    @staticmethod
    def _inside(p: dict[str, torch.Tensor], k: int, xl: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        """Mask of layer k at left-view coordinates (xl, y); B x H x W."""
        get = lambda name: _param(p, name, k)  # noqa: E731
        dx, dy = xl - get("cx"), y - get("cy")
        cos, sin = torch.cos(get("angle")), torch.sin(get("angle"))
        u, v = (dx * cos + dy * sin) / get("rx"), (-dx * sin + dy * cos) / get("ry")
        kind = get("kind")
        ellipse = u * u + v * v <= 1
        box = (u.abs() <= 1) & (v.abs() <= 1)
        phi = torch.atan2(v, u)
        blob = torch.sqrt(u * u + v * v) <= 1 + get("wobble") * torch.sin(get("lobes") * phi)
        mask = torch.where(kind == 0, ellipse, torch.where(kind == 3, blob, box))
        if k == 0:
            mask = torch.ones_like(mask)
        return mask & get("enabled")

    def _texture(self, p: dict[str, torch.Tensor], k: int, xl: torch.Tensor, y: torch.Tensor
                 ) -> torch.Tensor:
        """Colour of layer k at left-view coordinates; B x 3 x H x W. The texture is glued to the
        surface, so both views sample it at the same surface point."""
        get = lambda name: _param(p, name, k)  # noqa: E731
        cos, sin = torch.cos(get("tex_angle")), torch.sin(get("tex_angle"))
        size = self.textures.shape[-1]
        tu = ((xl * cos - y * sin) / get("tex_scale") + get("tex_x")) / size
        tv = ((xl * sin + y * cos) / get("tex_scale") + get("tex_y")) / size
        if "tex_g" in p:  # a random homography: the texture seen in perspective
            cfg = self.config
            w = ((get("tex_w") if "tex_w" in p else 1.0) + get("tex_g") * (xl / cfg.width - 0.5)
                 + get("tex_h") * (y / cfg.height - 0.5))
            # Towards a ground plane's horizon a texture shrinks without bound; a camera blurs it
            # there, grid sampling would alias, so it stops shrinking at 1/8 of its bottom-row
            # size. (The random homographies keep w >= 0.25, so they are unchanged.)
            tu, tv = tu / w.clamp(min=0.125), tv / w.clamp(min=0.125)
        # Mirror-repeat the texture over the plane: fold coordinates into [0, 1].
        tu, tv = (1 - (torch.remainder(t, 2.0) - 1).abs() for t in (tu, tv))
        grid = torch.stack([tu * 2 - 1, tv * 2 - 1], dim=-1)
        return F.grid_sample(self.textures[p["texture"][:, k]], grid, mode="bilinear",
                             padding_mode="border", align_corners=False)

    def _render_view(self, p: dict[str, torch.Tensor], batch: int, right: bool
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, dev = self.config, self.device
        x = torch.arange(cfg.width, device=dev, dtype=torch.float32).view(1, 1, -1)
        y = torch.arange(cfg.height, device=dev, dtype=torch.float32).view(1, -1, 1)
        x = x.expand(batch, cfg.height, cfg.width)
        y = y.expand(batch, cfg.height, cfg.width)
        zbuffer = torch.full((batch, cfg.height, cfg.width), -math.inf, device=dev)
        image = torch.zeros(batch, 3, cfg.height, cfg.width, device=dev)
        for k in range(cfg.max_layers + 1):
            if cfg.rich:
                disparity, xl = self._curved_layer(p, k, x, y, right)
                visible = disparity > zbuffer
                if visible.any():
                    zbuffer = torch.where(visible, disparity, zbuffer)
                    image = torch.where(visible[:, None], self._texture(p, k, xl, y), image)
                continue
            d0, b, c, cx, cy = (_param(p, name, k) for name in ("d0", "b", "c", "cx", "cy"))
            if right:  # solve x_r = x_l - d(x_l, y) for the surface point x_l
                xl = (x + d0 - b * cx + c * (y - cy)) / (1 - b)
            else:
                xl = x
            disparity = d0 + b * (xl - cx) + c * (y - cy)
            visible = self._inside(p, k, xl, y) & (disparity > zbuffer)
            if not visible.any():
                continue
            zbuffer = torch.where(visible, disparity, zbuffer)
            image = torch.where(visible[:, None], self._texture(p, k, xl, y), image)
        return image, zbuffer

    def _curved_layer(self, p: dict[str, torch.Tensor], k: int, x: torch.Tensor, y: torch.Tensor,
                      right: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Disparity of layer k seen by each pixel (-inf where it is not) and the surface point's
        left x: the nearer intersection inside the outline, else the farther one (the inside of a
        clipped patch)."""
        get = lambda name: _param(p, name, k)  # noqa: E731
        coeffs = coefficients(*(get(name) for name in ("surface", "height", "curve_u",
                                                       "curve_v")))
        geometry = {name: get(name) for name in ("cx", "cy", "angle", "rx", "ry", "d0", "b", "c")}
        disparity = torch.full_like(x, -math.inf)
        for root in reversed(intersect(coeffs, geometry, x, y, right)):
            xl = x + root if right else x
            inside = torch.isfinite(root) & self._inside(p, k, xl, y)
            disparity = torch.where(inside, root, disparity)
        xl = x + disparity.clamp(min=0) if right else x
        return disparity, xl

    def _highlights(self, image: torch.Tensor, zbuffer: torch.Tensor, p: dict[str, torch.Tensor],
                    spot_disparity: torch.Tensor, right: bool) -> torch.Tensor:
        """Add white specular spots. A highlight is a reflection, so it does not sit at the
        surface's disparity: the right view shows it `spot_shift` px away from where the surface
        point is. It lights only the surface it is on (disparity within 2 px) and saturates."""
        cfg = self.config
        x = torch.arange(cfg.width, device=image.device, dtype=torch.float32).view(1, 1, 1, -1)
        y = torch.arange(cfg.height, device=image.device, dtype=torch.float32).view(1, 1, -1, 1)
        centre_x = p["spot_x"] - (spot_disparity + p["spot_shift"] if right else 0.0)
        spread = p["spot_radius"][..., None, None]
        light = p["spot_gain"][..., None, None] * torch.exp(
            -((x - centre_x[..., None, None]) ** 2 + (y - p["spot_y"][..., None, None]) ** 2)
            / (2 * spread ** 2))
        on_surface = (zbuffer[:, None] - spot_disparity[..., None, None]).abs() < 2.0
        light = (light * (on_surface & p["spot_on"][..., None, None])).sum(dim=1, keepdim=True)
        return (image + light).clamp(0, 1)

    def _photometric(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, dev = image.shape[0], self.device
        gain = (_uniform(generator, (batch, 1, 1, 1), 0.75, 1.25, dev) *
                _uniform(generator, (batch, 3, 1, 1), 0.95, 1.05, dev))
        gamma = _uniform(generator, (batch, 1, 1, 1), 0.8, 1.25, dev)
        image = (image.clamp(1e-4, 1) ** gamma) * gain
        sigma = float(_uniform(generator, (1,), 0.0, 1.2, torch.device("cpu")))
        if sigma > 0.3:
            radius = int(math.ceil(2 * sigma))
            taps = torch.arange(-radius, radius + 1, device=dev, dtype=torch.float32)
            kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
            kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
            image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel,
                             groups=3)
            image = F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"),
                             kernel.transpose(2, 3), groups=3)
        noise = torch.randn(image.shape, generator=generator).to(dev)
        noise_level = _uniform(generator, (batch, 1, 1, 1), 0.0, 0.03, dev)
        return (image + noise * noise_level).clamp(0, 1)

    def _render(self, generator: torch.Generator, batch: int) -> StereoBatch:
        params = self._sample_layers(generator, batch)
        left, disparity = self._render_view(params, batch, right=False)
        right, right_zbuffer = self._render_view(params, batch, right=True)
        occlusion = self._occlusion(disparity, right_zbuffer, bracket=self.config.rich)
        if self.config.rich:
            rows = params["spot_y"].long().clamp(0, self.config.height - 1)
            cols = params["spot_x"].long().clamp(0, self.config.width - 1)
            spot_disparity = disparity[torch.arange(batch, device=self.device)[:, None], rows, cols]
            left = self._highlights(left, disparity, params, spot_disparity, right=False)
            right = self._highlights(right, right_zbuffer, params, spot_disparity, right=True)
        if self.config.photometric:
            left = self._photometric(left, generator)
            right = self._photometric(right, generator)
        return StereoBatch(left, right, disparity, occlusion)

    @staticmethod
    def _occlusion(disparity: torch.Tensor, right_zbuffer: torch.Tensor, bracket: bool = False
                   ) -> torch.Tensor:
        """Left pixels whose surface point is out of frame, or hidden by another surface, on the
        right. `bracket`: hidden only when the right pixels on both sides of the point are
        nearer; the nearest one alone marks steep curved surfaces as occluded."""
        batch, height, width = disparity.shape
        x = torch.arange(width, device=disparity.device, dtype=torch.float32).view(1, 1, -1)
        target = x - disparity
        out_of_frame = (target < 0) | (target > width - 1)
        if not bracket:
            grid_x = target / (width - 1) * 2 - 1
            grid_y = torch.linspace(-1, 1, height, device=disparity.device).view(1, -1, 1)
            grid = torch.stack([grid_x, grid_y.expand_as(grid_x)], dim=-1)
            seen = F.grid_sample(right_zbuffer[:, None], grid, mode="nearest",
                                 padding_mode="border", align_corners=True)[:, 0]
            return out_of_frame | (seen > disparity + 0.5)
        hidden = torch.ones_like(out_of_frame)
        for side in (torch.floor, torch.ceil):
            column = side(target).clamp(0, width - 1).long()
            seen = right_zbuffer.gather(2, column)
            hidden &= seen > disparity + 0.5
        return out_of_frame | hidden
