"""The input contract of the built-in alterations: a ``clip`` range, and floating, finite inputs inside it."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def check_clip(value: Any) -> tuple[float, float] | None:
    """Return ``clip`` as a ``(lo, hi)`` float pair with ``lo < hi``, or ``None`` for no clipping."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"`clip` must be a (lo, hi) pair or None, got {value!r}.")
    lo, hi = value
    for bound in (lo, hi):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise TypeError(f"`clip` bounds must be finite numbers, got {value!r}.")
    if lo >= hi:
        raise ValueError(f"`clip` must have lo < hi, got lo={lo}, hi={hi}.")
    return float(lo), float(hi)


def check_alteration_inputs(
    inputs: Tensor, clip: tuple[float, float] | None, alteration: str, indices: Tensor | None = None
) -> None:
    """Raise unless ``inputs`` are floating and, when ``clip`` is set, inside the ``clip`` range."""
    if not inputs.is_floating_point():
        raise TypeError(
            f"{alteration} needs floating-point inputs in the range {clip}, got dtype {inputs.dtype};"
            " convert (e.g. uint8 pixels / 255) before scoring."
        )
    finite = torch.isfinite(inputs)
    if not bool(finite.all()):
        row = int((~finite).reshape(inputs.shape[0], -1).any(dim=1).nonzero()[0])
        probe = row if indices is None else int(indices[row])
        raise ValueError(f"{alteration} got non-finite (NaN/inf) inputs for probe {probe}; clean the probe data.")
    if clip is not None and inputs.numel() > 0:
        low, high = float(inputs.min()), float(inputs.max())
        if low < clip[0] or high > clip[1]:
            raise ValueError(
                f"{alteration} alters inputs in the raw input range clip={clip}, but the inputs span"
                f" [{low:.4g}, {high:.4g}]. Pass un-normalised inputs and the model's normalisation as"
                " `preprocess`, or set `clip` to the inputs' range (None to disable)."
            )
