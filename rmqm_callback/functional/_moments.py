r"""Running moments ``(count, sum, M2)`` of a quantity over probes, and their exact-as-possible merge.

``M2`` is the sum of squared deviations from the mean. It is computed in two passes within a
chunk and merged across chunks and processes with the pairwise formula of Chan, Golub & LeVeque
(1979), so the variance never comes from subtracting two large, nearly equal sums
(:math:`\sum x^2 - (\sum x)^2 / n`), which loses everything when the values agree to 8 digits.

A moments tensor has shape ``(3, ...)``: ``[count, sum, M2]`` for each element of ``...``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def moments(values: Tensor, present: Tensor | None = None) -> Tensor:
    """Moments over dim 0 of ``values`` ``(n, ...)``, counting only where ``present`` (all by default).

    Examples:
        >>> moments(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
        tensor([3., 6., 2.], dtype=torch.float64)

    """
    if present is None:
        present = torch.ones_like(values, dtype=torch.bool)
    count = present.sum(dim=0).to(values.dtype)
    total = torch.where(present, values, torch.zeros_like(values)).sum(dim=0)
    mean = total / count.clamp(min=1)
    deviation = torch.where(present, values - mean, torch.zeros_like(values))
    return torch.stack([count, total, (deviation * deviation).sum(dim=0)])


def _merge_pair(first: Tensor, second: Tensor) -> Tensor:
    count_a, total_a, m2_a = first
    count_b, total_b, m2_b = second
    count = count_a + count_b
    both = (count_a > 0) & (count_b > 0)
    delta = total_b / count_b.clamp(min=1) - total_a / count_a.clamp(min=1)
    between = torch.where(both, delta * delta * count_a * count_b / count.clamp(min=1), torch.zeros_like(delta))
    return torch.stack([count, total_a + total_b, m2_a + m2_b + between])


def merge_moments(stacked: Tensor) -> Tensor:
    """Merge moments stacked along dim 0 (``(k, 3, ...)`` -> ``(3, ...)``): the ``dist_reduce_fx`` of the states.

    Examples:
        >>> halves = torch.stack([moments(torch.tensor([1.0, 2.0])), moments(torch.tensor([3.0]))])
        >>> merge_moments(halves)
        tensor([3., 6., 2.])

    """
    merged = stacked[0]
    for part in stacked[1:]:
        merged = _merge_pair(merged, part)
    return merged


def mean_and_se(summary: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard error of the mean (sample variance, ``ddof=1``); SE is NaN below 2 values."""
    count, total, m2 = summary
    mean = total / count
    se = torch.sqrt(m2 / (count - 1).clamp(min=1) / count)
    return mean, torch.where(count > 1, se, torch.full_like(mean, math.nan))
