"""Torch-only augmentations of image batches ``(B, C, H, W)`` in [0, 1] (no torchvision): digits and glyphs.

Every function takes an optional ``torch.Generator``, so a view is reproducible, and returns a batch of
the same shape and dtype, still in [0, 1]. :func:`augment` is one random view (the positives of SimCLR
and Triplet-SS are two of them); its erased rectangle is at most ``max_erase`` pixels a side (3 for the
8x8 digits; the glyphs use 10 of 28, the same share of the side).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(x: Tensor, low: float, high: float, generator: torch.Generator | None, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(x.shape[0], *shape, generator=generator, device=x.device)


def random_affine(
    x: Tensor,
    generator: torch.Generator | None = None,
    degrees: float = 15.0,
    translate: float = 0.125,
    scale: tuple[float, float] = (0.9, 1.1),
) -> Tensor:
    """Rotate by up to ``degrees``, shift by up to ``translate`` of the side, and rescale each image."""
    angle = _uniform(x, -math.radians(degrees), math.radians(degrees), generator)
    factor = _uniform(x, scale[0], scale[1], generator)
    shift = _uniform(x, -2 * translate, 2 * translate, generator, 2)  # grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    rows = [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)]
    theta = torch.stack(rows, 1)  # (B, 2, 3): output grid -> input sampling coordinates
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)


def random_erasing(x: Tensor, generator: torch.Generator | None = None, p: float = 0.5, max_size: int = 3) -> Tensor:
    """With probability ``p`` per image, set a random rectangle of side 1..``max_size`` pixels to 0."""
    height, width = x.shape[-2:]
    size = torch.randint(1, max_size + 1, (x.shape[0], 2), generator=generator, device=x.device)
    top = (_uniform(x, 0, 1, generator) * (height - size[:, 0] + 1)).long()
    left = (_uniform(x, 0, 1, generator) * (width - size[:, 1] + 1)).long()
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + size[:, 0])[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + size[:, 1])[:, None])
    erase = in_rows[:, :, None] & in_cols[:, None, :] & (_uniform(x, 0, 1, generator) < p)[:, None, None]
    return x.masked_fill(erase[:, None], 0.0)


def pixel_noise(x: Tensor, generator: torch.Generator | None = None, std: float = 0.05) -> Tensor:
    """Add Gaussian pixel noise of standard deviation ``std`` and clip to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def brightness_contrast(
    x: Tensor, generator: torch.Generator | None = None, brightness: float = 0.2, contrast: float = 0.2
) -> Tensor:
    """Scale each image's contrast about its mean by ``1 +- contrast``, shift by ``+- brightness``, clip."""
    c = _uniform(x, 1 - contrast, 1 + contrast, generator, 1, 1, 1).to(x.dtype)
    b = _uniform(x, -brightness, brightness, generator, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean + b).clamp(0.0, 1.0)


def augment(x: Tensor, generator: torch.Generator | None = None, max_erase: int = 3) -> Tensor:
    """One random view of a batch ``(B, C, H, W)`` in [0, 1]: affine, jitter, erasing, noise; stays in [0, 1].

    ``max_erase``: the largest side, in pixels, of the rectangle :func:`random_erasing` may set to 0.

    Raises:
        ValueError: If ``x`` is not a 4-D floating tensor.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"`x` must be a float batch (B, C, H, W), got shape {tuple(x.shape)}, {x.dtype}.")
    x = brightness_contrast(random_affine(x, generator), generator)
    return pixel_noise(random_erasing(x, generator, max_size=max_erase), generator)
