"""Correlation statistics for the study, with numpy only: Pearson, Spearman, bootstrap intervals, a table.

Spearman's rho is Pearson's r of the average ranks (ties share the mean of their ranks). Confidence
intervals are percentile bootstrap intervals over encoders: resample the ``n`` (score, accuracy) pairs
with replacement, recompute the coefficient, take the 2.5th and 97.5th percentiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray, np.ndarray], float]


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"`x` and `y` must be 1-D of one length, got shapes {x.shape} and {y.shape}.")
    return x, y


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; tied values get the average of the ranks they span (as scipy's "average")."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    # first and last position of each run of equal values
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    average = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; NaN when fewer than 2 points or either variable is constant."""
    x, y = _pair(x, y)
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    x, y = _pair(x, y)
    return pearson(rankdata(x), rankdata(y))


def bootstrap_ci(
    x: np.ndarray, y: np.ndarray, statistic: Statistic, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling the pairs with replacement.

    Resamples where the statistic is undefined (NaN: a constant resample) are dropped.

    Raises:
        ValueError: If ``resamples < 1`` or ``level`` is not in (0, 1).
    """
    x, y = _pair(x, y)
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"`resamples` must be >= 1 and `level` in (0, 1), got {resamples} and {level}.")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), size=(resamples, len(x)))
    values = np.array([statistic(x[p], y[p]) for p in picks])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def min_max(x: np.ndarray) -> np.ndarray:
    """Scale ``x`` to [0, 1]: ``(x - min) / (max - min)`` (all zeros when ``x`` is constant)."""
    x = np.asarray(x, dtype=np.float64)
    spread = x.max() - x.min()
    return (x - x.min()) / spread if spread > 0 else np.zeros_like(x)


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman coefficients of one score with the target, with bootstrap intervals."""

    score: str
    n: int
    pearson: float
    pearson_ci: tuple[float, float]
    spearman: float
    spearman_ci: tuple[float, float]


def correlations(
    scores: Mapping[str, np.ndarray], target: np.ndarray, resamples: int = 2000, seed: int = 0
) -> list[Correlation]:
    """One :class:`Correlation` per score; encoders whose score is not finite are left out of that score."""
    rows = []
    for name, values in scores.items():
        x, y = _pair(values, target)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        rows.append(
            Correlation(
                name,
                len(x),
                pearson(x, y),
                bootstrap_ci(x, y, pearson, resamples, seed=seed),
                spearman(x, y),
                bootstrap_ci(x, y, spearman, resamples, seed=seed),
            )
        )
    return rows


def markdown_table(rows: list[Correlation], level: float = 0.95) -> str:
    """The correlations as a GitHub markdown table, coefficients with their bootstrap intervals."""
    percent = f"{level * 100:g}%"
    lines = [
        f"| score | n | Pearson r [{percent} CI] | Spearman rho [{percent} CI] |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.score} | {row.n} | {row.pearson:+.2f} [{row.pearson_ci[0]:+.2f}, {row.pearson_ci[1]:+.2f}]"
            f" | {row.spearman:+.2f} [{row.spearman_ci[0]:+.2f}, {row.spearman_ci[1]:+.2f}] |"
        )
    return "\n".join(lines) + "\n"
