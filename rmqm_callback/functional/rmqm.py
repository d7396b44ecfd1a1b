r"""Representation Manifold Quality Metric (van der Merwe, Newman & Barnard, 2022), functional form.

The computation has two parts, as in torchmetrics' own functional metrics:

* :func:`_rmqm_update` checks a chunk of whole trajectories ``(n, L, d)``, computes the
  distances ``do`` (to the original) and ``dp`` (to the previous level) and turns them into
  *sums* over probes (:func:`_distance_statistics`). Sums add up across chunks and processes,
  so the result does not depend on chunking, probe order or the number of processes.
* :func:`_rmqm_compute` turns the summed statistics into ``D``, ``D_RC``, ``P_RC``, ``RMQM``,
  their standard errors over probes and the number of probes each component left out.

:func:`rmqm` chains the two.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from rmqm_callback._checks import check_bool, check_convention

#: Names of the statistics summed over probes, each a 0-dim tensor.
SCALAR_STATES = (
    "num_probes",
    "d_sum",
    "d_sumsq",
    "dprev_sum",
    "dprev_sumsq",
    "drc_sum",
    "drc_sumsq",
    "drc_count",
    "prc_sum",
    "prc_sumsq",
    "prc_count",
)
#: Names of the statistics summed over probes per level ``j = 1..J``, each of shape ``(J,)``.
LEVEL_STATES = (
    "do_level_sum",
    "do_level_sumsq",
    "dp_level_sum",
    "dp_level_sumsq",
    "drc_level_sum",
    "drc_level_sumsq",
    "drc_level_count",
    "prc_level_sum",
    "prc_level_sumsq",
    "prc_level_count",
)


class RMQMCollapseWarning(UserWarning):
    """A component of RMQM is infinite: the representation collapsed, or its steps are perfectly even."""


def _check_embeddings(embeddings: Tensor) -> None:
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"`embeddings` must be a torch.Tensor, got {type(embeddings).__name__}.")
    if not embeddings.is_floating_point():
        raise TypeError(f"`embeddings` must be a floating-point tensor, got dtype {embeddings.dtype}.")
    if embeddings.ndim != 3:
        raise ValueError(
            "`embeddings` must have shape (N, L, d): N probes, L levels (level 0 unaltered), d features;"
            f" got shape {tuple(embeddings.shape)}."
        )
    if embeddings.shape[1] < 3:
        raise ValueError(
            "`embeddings` needs at least L=3 levels (the original and two alterations) for P_RC to exist;"
            f" got shape {tuple(embeddings.shape)}."
        )
    if embeddings.shape[2] == 0:
        raise ValueError(f"`embeddings` has no features (d=0): shape {tuple(embeddings.shape)}.")
    finite = torch.isfinite(embeddings)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        count = int((~finite).sum())
        raise ValueError(
            f"`embeddings` contains {count} non-finite value(s) (NaN or inf), the first at probe {bad[0]},"
            f" level {bad[1]}: the encoder's output is not usable for RMQM."
        )


def prepare_embeddings(embeddings: Tensor, normalize: bool) -> Tensor:
    """The embeddings in float64, L2-normalised along the last dimension if asked.

    Distances are measured in float64 whatever the model's precision, so a float32 model's
    results differ from exact arithmetic on its float32 embeddings by float64 rounding only (the
    spike terms divide by small steps). Each vector is divided by its largest magnitude before
    its norm is taken, so every non-zero vector gets unit length however small or large it is
    (the squares neither underflow nor overflow); a zero vector stays zero.

    Example:
        >>> import torch
        >>> tiny = torch.tensor([[3e-30, 4e-30], [0.0, 0.0]])  # its squares underflow in float32
        >>> prepare_embeddings(tiny, normalize=True)
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]], dtype=torch.float64)

    """
    embeddings = embeddings.to(torch.float64)
    if not normalize:
        return embeddings
    largest = embeddings.abs().amax(dim=-1, keepdim=True)
    scaled = embeddings / torch.where(largest > 0, largest, torch.ones_like(largest))
    norm = torch.linalg.vector_norm(scaled, dim=-1, keepdim=True)
    return torch.where(norm > 0, scaled / norm, scaled)


def _trajectory_distances(embeddings: Tensor, normalize: bool) -> tuple[Tensor, Tensor]:
    """Distances ``do`` (to level 0) and ``dp`` (to the previous level), each ``(N, J)`` for ``j = 1..J``.

    Computed as norms of differences: the ``|a|^2 + |b|^2 - 2ab`` shortcut loses about 1% on
    small steps in float32, which the spike terms divide by.
    """
    phi = prepare_embeddings(embeddings, normalize)
    do = torch.linalg.vector_norm(phi[:, 1:] - phi[:, :1], dim=-1)
    dp = torch.linalg.vector_norm(phi[:, 1:] - phi[:, :-1], dim=-1)
    return do, dp


def _spike_terms(series: Tensor, convention: str, *, from_zero: bool) -> tuple[Tensor, Tensor, bool]:
    """Relative-change terms of a distance series ``(N, J)`` and where they exist.

    Paper: ``|s_j - s_{j-1}| / s_j``; for ``do`` (``from_zero``) the series starts at ``s_0 = 0``
    so ``j = 1`` has a term, for ``dp`` terms start at ``j = 2``. A term exists where its
    denominator is not 0. Reference (pandas ``pct_change``): ``|s_j - s_{j-1}| / s_{j-1}`` for
    ``j = 2..J``; a term exists where it is finite.

    Returns:
        ``terms`` (0 where a term does not exist), ``exists`` (bool mask) and ``drop_probe``:
        whether a probe missing any term is left out entirely (the reference convention).
    """
    n = series.shape[0]
    if convention == "paper":
        previous = torch.cat([series.new_zeros(n, 1), series[:, :-1]], dim=1)
        denominator = series
        exists = denominator != 0
        if not from_zero:
            exists[:, 0] = False
        drop_probe = False
    else:
        previous = torch.cat([series.new_full((n, 1), math.nan), series[:, :-1]], dim=1)
        denominator = previous
        drop_probe = True
    ratio = (series - previous).abs() / denominator
    if convention == "reference":
        exists = torch.isfinite(ratio)
    return torch.where(exists, ratio, torch.zeros_like(ratio)), exists, drop_probe


def _component_statistics(terms: Tensor, exists: Tensor, drop_probe: bool) -> dict[str, Tensor]:
    """Per-probe means of the spike terms, summed over the probes that keep a value."""
    counts = exists.sum(dim=1)
    if drop_probe:
        used = exists[:, 1:].all(dim=1)
        counts_for_mean = torch.full_like(counts, terms.shape[1] - 1)
    else:
        used = counts > 0
        counts_for_mean = counts
    per_probe = terms.sum(dim=1) / counts_for_mean.clamp(min=1).to(terms.dtype)
    per_probe = per_probe[used]
    return {
        "sum": per_probe.sum(),
        "sumsq": (per_probe * per_probe).sum(),
        "count": used.sum().to(terms.dtype),
        "level_sum": terms.sum(dim=0),
        "level_sumsq": (terms * terms).sum(dim=0),
        "level_count": exists.sum(dim=0).to(terms.dtype),
    }


def _distance_statistics(
    do: Tensor, dp: Tensor, convention: str, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """Turn distance series ``do``, ``dp`` of shape ``(n, J)`` into the summed statistics.

    The keys are :data:`SCALAR_STATES` and :data:`LEVEL_STATES`; every value is a sum over the
    ``n`` probes, so statistics of disjoint chunks add up to the statistics of their union.
    """
    do = do.to(dtype)
    dp = dp.to(dtype)
    d_probe = do.mean(dim=1)
    dprev_probe = dp.mean(dim=1)
    drc = _component_statistics(*_spike_terms(do, convention, from_zero=True))
    prc = _component_statistics(*_spike_terms(dp, convention, from_zero=False))
    stats = {
        "num_probes": torch.tensor(float(do.shape[0]), dtype=dtype, device=do.device),
        "d_sum": d_probe.sum(),
        "d_sumsq": (d_probe * d_probe).sum(),
        "dprev_sum": dprev_probe.sum(),
        "dprev_sumsq": (dprev_probe * dprev_probe).sum(),
        "do_level_sum": do.sum(dim=0),
        "do_level_sumsq": (do * do).sum(dim=0),
        "dp_level_sum": dp.sum(dim=0),
        "dp_level_sumsq": (dp * dp).sum(dim=0),
    }
    for prefix, component in (("drc", drc), ("prc", prc)):
        stats[f"{prefix}_sum"] = component["sum"]
        stats[f"{prefix}_sumsq"] = component["sumsq"]
        stats[f"{prefix}_count"] = component["count"]
        stats[f"{prefix}_level_sum"] = component["level_sum"]
        stats[f"{prefix}_level_sumsq"] = component["level_sumsq"]
        stats[f"{prefix}_level_count"] = component["level_count"]
    return stats


def _rmqm_update(
    embeddings: Tensor, convention: str = "paper", normalize: bool = True, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """Check a chunk of trajectories ``(n, L, d)`` and return its summed statistics."""
    check_convention(convention)
    check_bool("normalize", normalize)
    _check_embeddings(embeddings)
    do, dp = _trajectory_distances(embeddings, normalize)
    return _distance_statistics(do, dp, convention, dtype)


def _mean_and_se(total: Tensor, total_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard error of the mean (sample variance, ``ddof=1``); SE is NaN below 2 values."""
    mean = total / count
    variance = (total_sq - total * mean).clamp(min=0) / (count - 1)
    se = torch.where(count > 1, torch.sqrt(variance / count), torch.full_like(mean, math.nan))
    return mean, se


def _component(stats: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor]:
    """Mean over used probes and its SE; +inf (SE NaN) when no probe is left."""
    count = stats[f"{prefix}_count"]
    mean, se = _mean_and_se(stats[f"{prefix}_sum"], stats[f"{prefix}_sumsq"], count)
    nothing_left = count == 0
    return torch.where(nothing_left, torch.full_like(mean, math.inf), mean), se


def _warn_if_infinite(result: dict[str, Tensor], convention: str) -> None:
    num_probes = int(result["num_probes"])
    why = (
        "every relative-change term had a zero denominator"
        if convention == "paper"
        else "each had a relative-change term that is not finite (a zero denominator)"
    )
    for name in ("D_RC", "P_RC"):
        if int(result[f"{name}_left_out"]) == num_probes:
            warnings.warn(
                f"All {num_probes} probes were left out of {name} because {why}: the representation has"
                f" collapsed (altered inputs map to the same point). {name} is +inf and adds 0 to RMQM.",
                RMQMCollapseWarning,
                stacklevel=3,
            )
    if math.isinf(float(result["RMQM"])):
        warnings.warn(
            "RMQM is +inf: a spike component is exactly 0 (every step of every trajectory has the same"
            " length), so its reciprocal in eq. 4 is infinite.",
            RMQMCollapseWarning,
            stacklevel=3,
        )


def _rmqm_compute(stats: dict[str, Tensor], convention: str = "paper") -> dict[str, Tensor]:
    """Turn summed statistics into the RMQM result dictionary (see :func:`rmqm`)."""
    num_probes = stats["num_probes"]
    if float(num_probes) == 0:
        raise ValueError("RMQM needs at least one probe, but no trajectory was given.")
    d, d_se = _mean_and_se(stats["d_sum"], stats["d_sumsq"], num_probes)
    d_prev, d_prev_se = _mean_and_se(stats["dprev_sum"], stats["dprev_sumsq"], num_probes)
    d_rc, d_rc_se = _component(stats, "drc")
    p_rc, p_rc_se = _component(stats, "prc")
    inside = 1 + d + 1 / d_rc + 1 / p_rc
    if convention == "reference":
        inside = inside + d_prev
    result = {
        "RMQM": torch.log(inside),
        "D": d,
        "D_RC": d_rc,
        "P_RC": p_rc,
        "D_se": d_se,
        "D_RC_se": d_rc_se,
        "P_RC_se": p_rc_se,
        "num_probes": num_probes,
        "D_RC_left_out": num_probes - stats["drc_count"],
        "P_RC_left_out": num_probes - stats["prc_count"],
    }
    if convention == "reference":
        result["D_prev"] = d_prev
        result["D_prev_se"] = d_prev_se
    _warn_if_infinite(result, convention)
    return result


def _rmqm_curves(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-level means over probes (and their SEs) for ``j = 1..J``; NaN where no term exists."""
    num_probes = stats["num_probes"]
    curves = {"level": torch.arange(1, stats["do_level_sum"].shape[0] + 1, device=num_probes.device)}
    sources = {
        "distance_to_original": ("do_level", num_probes),
        "distance_to_previous": ("dp_level", num_probes),
        "relative_change_to_original": ("drc_level", stats["drc_level_count"]),
        "relative_change_to_previous": ("prc_level", stats["prc_level_count"]),
    }
    for name, (prefix, count) in sources.items():
        count = count.expand_as(stats[f"{prefix}_sum"])
        mean, se = _mean_and_se(stats[f"{prefix}_sum"], stats[f"{prefix}_sumsq"], count)
        curves[name] = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
        curves[f"{name}_se"] = se
    return curves


def rmqm(embeddings: Tensor, *, convention: str = "paper", normalize: bool = True) -> dict[str, Tensor]:
    r"""Representation Manifold Quality Metric of trajectories of representations.

    For probe :math:`i` and level :math:`j = 1..J` let :math:`d^o_{ij} = \|\phi_{i0}-\phi_{ij}\|`
    and :math:`d^p_{ij} = \|\phi_{i,j-1}-\phi_{ij}\|` (after L2-normalising each
    :math:`\phi` when ``normalize``). In the ``"paper"`` convention (eqs. 1-4), written for the
    case where every term exists:

    .. math::

        D = \frac{1}{NJ}\sum_{i,j} d^o_{ij}, \quad
        D_{RC} = \frac{1}{N}\sum_i \frac{1}{J}\sum_{j=1}^{J}\frac{|d^o_{ij}-d^o_{i,j-1}|}{d^o_{ij}}, \quad
        P_{RC} = \frac{1}{N}\sum_i \frac{1}{J-1}\sum_{j=2}^{J}\frac{|d^p_{ij}-d^p_{i,j-1}|}{d^p_{ij}},

        \mathrm{RMQM} = \ln\left(1 + D + D_{RC}^{-1} + P_{RC}^{-1}\right).

    A term whose denominator is 0 does not exist; a probe's mean is over its existing terms and a
    probe with none is left out (counted in ``D_RC_left_out`` / ``P_RC_left_out``). A component
    with no probe left is ``+inf`` and a :class:`RMQMCollapseWarning` is issued.

    The ``"reference"`` convention is the authors' released pipeline: spikes are
    ``|s_j - s_{j-1}| / s_{j-1}`` for ``j = 2..J``, a probe with any non-finite term is dropped,
    and :math:`\mathrm{RMQM} = \ln(1 + D + D_{prev} + D_{RC}^{-1} + P_{RC}^{-1})` with
    :math:`D_{prev}` the mean of :math:`d^p`.

    Args:
        embeddings: ``(N, L, d)`` floating tensor: N probes, L >= 3 levels (level 0 unaltered),
            d features. Must be finite.
        convention: ``"paper"`` (default) or ``"reference"``.
        normalize: L2-normalise every representation before measuring distances.

    Returns:
        A dict of 0-dim float64 tensors: ``RMQM``, ``D``, ``D_RC``, ``P_RC``, their standard
        errors over probes ``D_se``, ``D_RC_se``, ``P_RC_se`` (NaN with fewer than 2 probes),
        ``num_probes``, ``D_RC_left_out``, ``P_RC_left_out``; with ``convention="reference"``
        also ``D_prev`` and ``D_prev_se``.

    Raises:
        TypeError: ``embeddings`` is not a floating tensor.
        ValueError: wrong shape, ``L < 3``, no probes, non-finite values or unknown ``convention``.

    Example:
        >>> import torch
        >>> from rmqm_callback.functional import rmqm
        >>> # one probe whose representation moves 1, 3 and 4 away from the original
        >>> trajectory = torch.tensor([[[0.0], [1.0], [3.0], [4.0]]])
        >>> result = rmqm(trajectory, normalize=False)
        >>> [round(result[key].item(), 4) for key in ("D", "D_RC", "P_RC", "RMQM")]
        [2.6667, 0.6389, 0.75, 1.8818]

    """
    return _rmqm_compute(_rmqm_update(embeddings, convention, normalize), convention)
