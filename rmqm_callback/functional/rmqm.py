r"""Representation Manifold Quality Metric (van der Merwe, Newman & Barnard, 2022), functional form.

The computation has two parts, as in torchmetrics' own functional metrics:

* :func:`_rmqm_update` checks a chunk of whole trajectories ``(n, L, d)``, computes the
  distances ``do`` (to the original) and ``dp`` (to the previous level) and turns them into
  running moments over probes, ``(count, sum, M2)`` per quantity (:func:`_distance_statistics`).
  Moments of disjoint chunks merge into the moments of their union
  (:func:`~rmqm_callback.functional._moments.merge_moments`), so the result does not depend on
  chunking, probe order or the number of processes.
* :func:`_rmqm_compute` turns the moments into ``D``, ``D_RC``, ``P_RC``, ``RMQM``, their
  standard errors over probes and the number of probes each component left out.

:func:`rmqm` chains the two.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from rmqm_callback.functional._checks import check_bool, check_convention
from rmqm_callback.functional._moments import mean_and_se, moments

#: Moments ``(3,)`` over probes of: each probe's mean ``do`` (D) and mean ``dp`` (D_prev), and
#: each kept probe's mean spike term to the original (D_RC) and to the previous level (P_RC).
SCALAR_STATES = ("d_moments", "dprev_moments", "drc_moments", "prc_moments")
#: Moments ``(3, J)`` over probes at each level ``j = 1..J``: ``do``, ``dp`` and the spike terms.
LEVEL_STATES = ("do_level_moments", "dp_level_moments", "drc_level_moments", "prc_level_moments")


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
    spike terms divide by small steps). Every non-zero vector gets unit length however small or
    large it is: squares of float32 or half values cannot underflow or overflow in float64, and
    float64 vectors are divided by their largest magnitude before their norm is taken. A zero
    vector stays zero.

    Examples:
        >>> import torch
        >>> tiny = torch.tensor([[3e-30, 4e-30], [0.0, 0.0]])  # its squares underflow in float32
        >>> prepare_embeddings(tiny, normalize=True)
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]], dtype=torch.float64)

    """
    if not normalize:
        return embeddings.to(torch.float64)
    return normalize_float64_(embeddings.to(torch.float64, copy=True), embeddings.dtype)


def normalize_float64_(phi: Tensor, source_dtype: torch.dtype) -> Tensor:
    """L2-normalise ``phi``'s rows in place, as :func:`prepare_embeddings` does embeddings of ``source_dtype``.

    ``phi`` is a float64 tensor the caller owns, holding those embeddings already cast to float64
    (for example stacked into it with ``out=``); it is overwritten and returned (a new tensor
    instead when autograd records ``phi``, which then stays as it was). The same operations as
    :func:`prepare_embeddings`, so the same numbers, without its copy.

    Examples:
        >>> import torch
        >>> normalize_float64_(torch.tensor([[3.0, 4.0]], dtype=torch.float64), torch.float32)
        tensor([[0.6000, 0.8000]], dtype=torch.float64)

    """
    divide = torch.div if phi.requires_grad and torch.is_grad_enabled() else Tensor.div_  # autograd needs phi
    if source_dtype == torch.float64:  # its squares can underflow (~1e-160) or overflow
        largest = phi.abs().amax(dim=-1, keepdim=True)
        phi = divide(phi, torch.where(largest > 0, largest, torch.ones_like(largest)))
    # else the cast was exact, and the norm cannot under- or overflow in float64
    norm = torch.linalg.vector_norm(phi, dim=-1, keepdim=True)
    return divide(phi, torch.where(norm > 0, norm, torch.ones_like(norm)))


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


def _component_statistics(terms: Tensor, exists: Tensor, drop_probe: bool) -> tuple[Tensor, Tensor]:
    """Moments of the per-probe mean spike term over the probes that keep one, and per level."""
    counts = exists.sum(dim=1)
    if drop_probe:
        used = exists[:, 1:].all(dim=1)
        counts_for_mean = torch.full_like(counts, terms.shape[1] - 1)
    else:
        used = counts > 0
        counts_for_mean = counts
    per_probe = terms.sum(dim=1) / counts_for_mean.clamp(min=1).to(terms.dtype)
    return moments(per_probe, used), moments(terms, exists)


def _distance_statistics(
    do: Tensor, dp: Tensor, convention: str, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """Turn distance series ``do``, ``dp`` of shape ``(n, J)`` into moments over the ``n`` probes.

    The keys are :data:`SCALAR_STATES` and :data:`LEVEL_STATES`; the moments of disjoint chunks
    merge into those of their union (:func:`~rmqm_callback.functional._moments.merge_moments`).
    """
    do = do.to(dtype)
    dp = dp.to(dtype)
    drc, drc_level = _component_statistics(*_spike_terms(do, convention, from_zero=True))
    prc, prc_level = _component_statistics(*_spike_terms(dp, convention, from_zero=False))
    return {
        "d_moments": moments(do.mean(dim=1)),
        "dprev_moments": moments(dp.mean(dim=1)),
        "drc_moments": drc,
        "prc_moments": prc,
        "do_level_moments": moments(do),
        "dp_level_moments": moments(dp),
        "drc_level_moments": drc_level,
        "prc_level_moments": prc_level,
    }


def _rmqm_update(
    embeddings: Tensor, convention: str = "paper", normalize: bool = True, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """Check a chunk of trajectories ``(n, L, d)`` and return its moments."""
    check_convention(convention)
    check_bool("normalize", normalize)
    _check_embeddings(embeddings)
    do, dp = _trajectory_distances(embeddings, normalize)
    return _distance_statistics(do, dp, convention, dtype)


def _component(summary: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over used probes and its SE; +inf (SE NaN) when no probe is left."""
    mean, se = mean_and_se(summary)
    return torch.where(summary[0] == 0, torch.full_like(mean, math.inf), mean), se


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
    """Turn moments into the RMQM result dictionary (see :func:`rmqm`)."""
    num_probes = stats["d_moments"][0]
    if float(num_probes) == 0:
        raise ValueError("RMQM needs at least one probe, but no trajectory was given.")
    d, d_se = mean_and_se(stats["d_moments"])
    d_prev, d_prev_se = mean_and_se(stats["dprev_moments"])
    d_rc, d_rc_se = _component(stats["drc_moments"])
    p_rc, p_rc_se = _component(stats["prc_moments"])
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
        "D_RC_left_out": num_probes - stats["drc_moments"][0],
        "P_RC_left_out": num_probes - stats["prc_moments"][0],
    }
    if convention == "reference":
        result["D_prev"] = d_prev
        result["D_prev_se"] = d_prev_se
    _warn_if_infinite(result, convention)
    return result


def _rmqm_curves(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-level means over probes (and their SEs) for ``j = 1..J``; NaN where no term exists."""
    levels = stats["do_level_moments"].shape[1]
    curves = {"level": torch.arange(1, levels + 1, device=stats["do_level_moments"].device)}
    sources = {
        "distance_to_original": "do_level_moments",
        "distance_to_previous": "dp_level_moments",
        "relative_change_to_original": "drc_level_moments",
        "relative_change_to_previous": "prc_level_moments",
    }
    for name, state in sources.items():
        mean, se = mean_and_se(stats[state])
        curves[name] = torch.where(stats[state][0] > 0, mean, torch.full_like(mean, math.nan))
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

    Examples:
        >>> import torch
        >>> from rmqm_callback.functional import rmqm
        >>> # one probe whose representation moves 1, 3 and 4 away from the original
        >>> trajectory = torch.tensor([[[0.0], [1.0], [3.0], [4.0]]])
        >>> result = rmqm(trajectory, normalize=False)
        >>> [round(result[key].item(), 4) for key in ("D", "D_RC", "P_RC", "RMQM")]
        [2.6667, 0.6389, 0.75, 1.8818]

    """
    return _rmqm_compute(_rmqm_update(embeddings, convention, normalize), convention)
