"""Shared by the tests of every layer: the result keys, a tolerant comparison of results, test trajectories."""

from __future__ import annotations

import math

import torch

PAPER_KEYS = ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se", "num_probes", "D_RC_left_out", "P_RC_left_out")
REFERENCE_KEYS = (*PAPER_KEYS, "D_prev", "D_prev_se")


KEYS = {"paper": PAPER_KEYS, "reference": REFERENCE_KEYS}


SE_KEYS = ("D_se", "D_RC_se", "P_RC_se")


def _same(a: float, b: float, rel: float, abs_tol: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def assert_matches(result: dict, expected: dict, keys, rel: float, abs_tol: float = 0.0) -> None:
    """Every key within ``rel`` (``abs_tol``).

    A standard error that should be 0 (probes that agree exactly) is computed from deviations
    of rounded per-probe values: it may be a few ulps of its component's mean instead.
    """
    assert set(keys) <= set(result), f"missing keys {set(keys) - set(result)}"
    for key in keys:
        got, want = float(result[key]), float(expected[key])
        tolerance = abs_tol
        if key.endswith("_se") and math.isfinite(want):
            tolerance = max(abs_tol, 1e-15 * abs(float(expected[key[: -len("_se")]])))
        assert _same(got, want, rel, tolerance), f"{key}: got {got!r}, expected {want!r}"


def trajectories(
    n: int,
    levels: int,
    d: int,
    seed: int,
    *,
    step: float = 0.3,
    repeats: int = 0,
    collapsed: int = 0,
    dtype=torch.float64,
) -> torch.Tensor:
    """Random-walk trajectories (n, L, d); ``repeats`` levels copy their predecessor (zero steps),
    ``collapsed`` probes stay put at every level (all distances 0)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
    steps = step * torch.randn(n, levels - 1, d, generator=g, dtype=torch.float64)
    if repeats:
        # zero steps at some levels: dp_j = 0 there and do_j = do_{j-1}
        which = torch.randperm(levels - 1, generator=g)[:repeats]
        steps[:, which] = 0
    x = torch.cat([start, start + steps.cumsum(dim=1)], dim=1)
    if collapsed:
        x[:collapsed] = x[:collapsed, :1]
    return x.to(dtype)


def nearly_identical(n: int, spread: float, *, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``n`` copies of one trajectory (times ``scale``) moved apart by ``spread``: values agree to many digits."""
    g = torch.Generator().manual_seed(seed)
    one = trajectories(1, 6, 4, seed=seed) * scale
    return one.repeat(n, 1, 1) + spread * scale * torch.randn(n, 6, 4, generator=g, dtype=torch.float64)
