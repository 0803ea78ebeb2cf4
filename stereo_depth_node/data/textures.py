"""Texture bank for the synthetic generator: images bundled with scikit-image, plus procedural ones
(noise at several scales, stripes, checkerboards, low-texture gradients, repetitive grids) and flat
colours (textureless regions).

Natural photographs: every photograph that the installed packages bundle. scikit-image is the only
one installed; scikit-learn and matplotlib are not dependencies of this package, and adding them
(tens of MB with their own dependencies) for the 2-3 photographs they bundle is not worth it, and
would make the texture bank, hence the training data of a seed, depend on what else is installed.
Left out on purpose: scikit-image's Middlebury 2014 motorcycle pair (Middlebury is evaluation
data), and its synthetic drawings (chessboard, logo, horse silhouette, phantom)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# scikit-image sample images that ship inside the package (no download needed).
SKIMAGE_TEXTURES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass",
                    "gravel", "cell", "moon", "text", "page", "clock", "coins",
                    "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")
# The rich generator uses all bundled photographs; the plain one keeps its original bank.
NATURAL_TEXTURES = SKIMAGE_TEXTURES + ("microaneurysms", "lfw_subset")
TEXTURE_SIZE = 256


def _to_square_rgb(image: np.ndarray, size: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(image)).float()
    if tensor.dim() == 2:
        tensor = tensor[..., None].expand(-1, -1, 3)
    tensor = tensor[..., :3].permute(2, 0, 1) / 255.0
    side = min(tensor.shape[1:])
    tensor = tensor[:, :side, :side]
    return F.interpolate(tensor[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def _load(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if name == "lfw_subset":  # 200 faces of 25 x 25 px: tile 100 of them into one photograph
        faces = (image[:100] * 255).astype(np.uint8).reshape(10, 10, 25, 25)
        image = faces.transpose(0, 2, 1, 3).reshape(250, 250)
    return image


def image_textures(names: tuple[str, ...] | None = None, size: int = TEXTURE_SIZE
                   ) -> torch.Tensor:
    """N x 3 x size x size textures from scikit-image's bundled sample images, in [0, 1]."""
    return torch.stack([_to_square_rgb(_load(name), size)
                        for name in (names or SKIMAGE_TEXTURES)])


def flat_textures(count: int, generator: torch.Generator, size: int = TEXTURE_SIZE
                  ) -> torch.Tensor:
    """count x 3 x size x size single colours: textureless regions, where matching must come
    from the context (walls, sky, car bodies)."""
    return torch.rand(count, 3, 1, 1, generator=generator).expand(-1, -1, size, size).clone()


def _smooth_noise(generator: torch.Generator, size: int, scale: int) -> torch.Tensor:
    coarse = torch.rand(1, 3, max(size // scale, 2), max(size // scale, 2), generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]


def procedural_textures(count: int, generator: torch.Generator,
                        size: int = TEXTURE_SIZE) -> torch.Tensor:
    """count x 3 x size x size textures in [0, 1], cycling through five kinds."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                          torch.arange(size, dtype=torch.float32), indexing="ij")
    textures = []
    for i in range(count):
        kind = i % 5
        colour = torch.rand(3, 1, 1, generator=generator)
        if kind == 0:  # noise at several scales
            weights = torch.rand(4, generator=generator)
            tex = sum(w * _smooth_noise(generator, size, s)
                      for w, s in zip(weights, (1, 4, 16, 64))) / weights.sum()
        elif kind == 1:  # stripes at a random angle and period
            angle = float(torch.rand(1, generator=generator)) * math.pi
            period = 3 + float(torch.rand(1, generator=generator)) * 20
            phase = (x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period
            tex = (0.5 + 0.5 * torch.sin(phase))[None] * colour + 0.2 * _smooth_noise(
                generator, size, 8)
        elif kind == 2:  # checkerboard
            cell = 4 + int(torch.randint(0, 28, (1,), generator=generator))
            board = ((x // cell + y // cell) % 2)[None]
            tex = board * colour + (1 - board) * torch.rand(3, 1, 1, generator=generator)
        elif kind == 3:  # low texture: a faint gradient with a little noise
            gradient = (x * float(torch.rand(1, generator=generator)) +
                        y * float(torch.rand(1, generator=generator))) / (2 * size)
            tex = colour * (0.7 + 0.3 * gradient[None]) + 0.02 * _smooth_noise(generator, size, 2)
        else:  # repetitive grid of dots
            cell = 6 + int(torch.randint(0, 20, (1,), generator=generator))
            dots = (((x % cell) - cell / 2) ** 2 + ((y % cell) - cell / 2) ** 2 < (cell / 3) ** 2)
            tex = dots[None].float() * colour + (~dots)[None].float() * (1 - colour)
        textures.append(tex.clamp(0, 1))
    return torch.stack(textures)
