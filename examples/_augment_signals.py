"""Torch-only augmentations of 1-D signal batches ``(B, C, L)`` in [0, 1], for MNIST-1D's contrastive methods.

Every function takes an optional ``torch.Generator``, so a view is reproducible, and returns a batch of
the same shape and dtype, still in [0, 1]. :func:`augment_signal` is one random view: a time warp (shift
and stretch), an amplitude change about the signal's mean, and Gaussian noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(x: Tensor, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)


def random_warp(
    x: Tensor, generator: torch.Generator | None = None, shift: float = 0.1, stretch: tuple[float, float] = (0.9, 1.1)
) -> Tensor:
    """Shift each signal by up to ``shift`` of its length and stretch it in time by a factor in ``stretch``.

    Linear interpolation; beyond the ends the edge values are repeated.
    """
    factor = _uniform(x, stretch[0], stretch[1], generator)
    offset = _uniform(x, -2 * shift, 2 * shift, generator)  # grid coordinates span [-1, 1]
    positions = torch.linspace(-1.0, 1.0, x.shape[-1], device=x.device, dtype=x.dtype)
    source = positions[None, :] / factor[:, None] + offset[:, None]  # (B, L): where each output sample reads
    grid = torch.stack([source, torch.zeros_like(source)], dim=-1)[:, None]  # (B, 1, L, 2) for a 1-row image
    warped = F.grid_sample(x[:, :, None, :], grid, padding_mode="border", align_corners=True)
    return warped[:, :, 0, :].clamp(0.0, 1.0)


def random_amplitude(
    x: Tensor, generator: torch.Generator | None = None, scale: float = 0.2, offset: float = 0.05
) -> Tensor:
    """Scale each signal about its mean by ``1 +- scale`` and shift it by ``+- offset``, clipped to [0, 1]."""
    s = _uniform(x, 1 - scale, 1 + scale, generator)[:, None, None]
    b = _uniform(x, -offset, offset, generator)[:, None, None]
    mean = x.mean(dim=(1, 2), keepdim=True)
    return ((x - mean) * s + mean + b).clamp(0.0, 1.0)


def signal_noise(x: Tensor, generator: torch.Generator | None = None, std: float = 0.02) -> Tensor:
    """Add Gaussian noise of standard deviation ``std`` (a fifth of MNIST-1D's 0.10 in [0, 1]) and clip."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def augment_signal(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random view of a batch ``(B, C, L)`` in [0, 1]: warp, amplitude, noise; stays in [0, 1].

    Raises:
        ValueError: If ``x`` is not a 3-D floating tensor.
    """
    if x.ndim != 3 or not x.is_floating_point():
        raise ValueError(f"`x` must be a float batch (B, C, L), got shape {tuple(x.shape)}, {x.dtype}.")
    return signal_noise(random_amplitude(random_warp(x, generator), generator), generator)
