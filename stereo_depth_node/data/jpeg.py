"""JPEG compression artefacts in torch (any device, batched): the baseline JPEG pipeline without
the entropy coding, which is lossless. RGB -> YCbCr, chroma averaged over 2 x 2 pixels (4:2:0),
8 x 8 block DCT, quantisation with the IJG tables scaled by the quality, and back."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The example tables of the JPEG standard (Annex K), as libjpeg uses them.
LUMA_TABLE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA_TABLE = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32
RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def quantisation_table(table: tuple[int, ...], quality: int) -> torch.Tensor:
    """8 x 8 table scaled as libjpeg does for quality 1-100."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    values = torch.tensor(table, dtype=torch.float32)
    return ((values * scale + 50) // 100).clamp(1, 255).view(8, 8)


def _dct_matrix(device: torch.device) -> torch.Tensor:
    k = torch.arange(8, device=device, dtype=torch.float32)
    matrix = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    matrix[0] /= math.sqrt(2)
    return matrix  # orthonormal DCT-II: coefficients = M @ block @ M.T


def _quantise_blocks(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """plane: N x H x W (level-shifted, H and W multiples of 8)."""
    n, height, width = plane.shape
    matrix = _dct_matrix(plane.device)
    blocks = plane.view(n, height // 8, 8, width // 8, 8).transpose(2, 3)
    coefficients = matrix @ blocks @ matrix.T
    table = table.to(plane.device)
    coefficients = torch.round(coefficients / table) * table
    blocks = matrix.T @ coefficients @ matrix
    return blocks.transpose(2, 3).reshape(n, height, width)


def jpeg_compress(image: torch.Tensor, quality: int) -> torch.Tensor:
    """B x 3 x H x W in [0, 1] -> the same after JPEG compression at `quality` (1-100)."""
    batch, _, height, width = image.shape
    pad_h, pad_w = -height % 16, -width % 16  # whole 16 x 16 macroblocks, edges replicated
    padded = F.pad(image * 255, (0, pad_w, 0, pad_h), mode="replicate")
    to_ycbcr = torch.tensor(RGB_TO_YCBCR, device=image.device)
    ycbcr = torch.einsum("ij,bjhw->bihw", to_ycbcr, padded)
    luma = _quantise_blocks(ycbcr[:, 0] - 128, quantisation_table(LUMA_TABLE, quality)) + 128
    chroma = F.avg_pool2d(ycbcr[:, 1:], 2)
    chroma = _quantise_blocks(chroma.reshape(-1, *chroma.shape[2:]),
                              quantisation_table(CHROMA_TABLE, quality))
    chroma = F.interpolate(chroma.view(batch, 2, *chroma.shape[1:]), scale_factor=2,
                           mode="bilinear", align_corners=False)
    ycbcr = torch.cat([luma[:, None], chroma], dim=1)
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_ycbcr), ycbcr)
    return (rgb[:, :, :height, :width] / 255).clamp(0, 1)
