"""An independent float64 implementation of SPEC.md, written with plain Python loops and numpy.

Nothing here is imported from ``rmqm_callback``: it is the yardstick the package is measured
against, written straight from the definitions in SPEC.md:

* ``do_{i,j} = |phi_{i,0} - phi_{i,j}|`` and ``dp_{i,j} = |phi_{i,j-1} - phi_{i,j}|`` for
  ``j = 1..J``, each ``phi`` L2-normalised first when ``normalize`` (a zero vector stays zero).
* paper: ``D`` = mean of ``do``; per probe ``D_RC`` = mean over existing terms
  ``|do_j - do_{j-1}| / do_j`` (``j = 1..J``, ``do_0 = 0``), ``P_RC`` = mean over existing terms
  ``|dp_j - dp_{j-1}| / dp_j`` (``j = 2..J``); a term exists where its denominator is not 0; a
  probe with no term is left out; a component with no probe is +inf;
  ``RMQM = ln(1 + D + 1/D_RC + 1/P_RC)``.
* reference: spikes ``|s_j - s_{j-1}| / s_{j-1}`` for ``j = 2..J``, a probe with any non-finite
  term is dropped, ``RMQM = ln(1 + D + D_prev + 1/D_RC + 1/P_RC)`` with ``D_prev`` the mean of ``dp``.
* standard errors are the sample standard deviation (``ddof=1``) over probes divided by
  ``sqrt(count)``, NaN with fewer than two values.
"""

from __future__ import annotations

import math

import numpy as np


def _norm(vector) -> float:
    return math.sqrt(sum(float(v) * float(v) for v in vector))


def distance_series(embeddings, normalize: bool = True) -> tuple[list[list[float]], list[list[float]]]:
    """``do`` and ``dp`` as lists (one per probe) of ``J`` floats, computed with loops."""
    array = np.asarray(embeddings, dtype=np.float64)
    num_probes, num_levels, _ = array.shape
    do_all, dp_all = [], []
    for i in range(num_probes):
        phi = []
        for j in range(num_levels):
            vector = [float(v) for v in array[i, j]]
            if normalize:
                length = _norm(vector)
                vector = [v / length for v in vector] if length > 0 else vector
            phi.append(vector)
        do_i, dp_i = [], []
        for j in range(1, num_levels):
            do_i.append(_norm([a - b for a, b in zip(phi[0], phi[j])]))
            dp_i.append(_norm([a - b for a, b in zip(phi[j - 1], phi[j])]))
        do_all.append(do_i)
        dp_all.append(dp_i)
    return do_all, dp_all


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _se(values: list[float]) -> float:
    if len(values) < 2:
        return math.nan
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1)) / math.sqrt(len(values))


def _paper_terms(series: list[float], first: int) -> list[float | None]:
    """Paper spike terms for j = 1..J (list index j-1), ``None`` where the term does not exist."""
    terms: list[float | None] = []
    for j in range(1, len(series) + 1):
        current = series[j - 1]
        previous = series[j - 2] if j >= 2 else 0.0
        if j < first or current == 0:
            terms.append(None)
        else:
            terms.append(abs(current - previous) / current)
    return terms


def _reference_terms(series: list[float]) -> list[float | None]:
    """pct_change spike terms for j = 1..J; j = 1 has none (NaN in pandas), non-finite ones are None."""
    terms: list[float | None] = [None]
    for j in range(2, len(series) + 1):
        previous, current = series[j - 2], series[j - 1]
        if previous == 0:
            terms.append(None)  # x / 0 = inf, 0 / 0 = NaN: non-finite
        else:
            terms.append(abs(current - previous) / previous)
    return terms


def _per_probe(terms: list[float | None], convention: str) -> float | None:
    """A probe's component value, or ``None`` when the probe is left out of the component."""
    if convention == "paper":
        kept = [t for t in terms if t is not None]
        return _mean(kept) if kept else None
    if any(t is None for t in terms[1:]):
        return None
    return _mean([t for t in terms[1:] if t is not None])


def _component(values: list[float | None]) -> tuple[float, float, int]:
    """Mean over kept probes (+inf when none), its SE and the number left out."""
    kept = [v for v in values if v is not None]
    left_out = len(values) - len(kept)
    if not kept:
        return math.inf, math.nan, left_out
    return _mean(kept), _se(kept), left_out


def _reciprocal(value: float) -> float:
    return math.inf if value == 0 else 1.0 / value


def _terms(do_i, dp_i, convention):
    if convention == "paper":
        return _paper_terms(do_i, first=1), _paper_terms(dp_i, first=2)
    return _reference_terms(do_i), _reference_terms(dp_i)


def reference_rmqm(embeddings, convention: str = "paper", normalize: bool = True) -> dict[str, float]:
    """RMQM and its parts as Python floats, exactly as SPEC.md defines them."""
    if convention not in ("paper", "reference"):
        raise ValueError(convention)
    do_all, dp_all = distance_series(embeddings, normalize)
    num_probes = len(do_all)
    d_probe = [_mean(do_i) for do_i in do_all]
    dprev_probe = [_mean(dp_i) for dp_i in dp_all]
    drc_probe, prc_probe = [], []
    for do_i, dp_i in zip(do_all, dp_all):
        do_terms, dp_terms = _terms(do_i, dp_i, convention)
        drc_probe.append(_per_probe(do_terms, convention))
        prc_probe.append(_per_probe(dp_terms, convention))
    d_rc, d_rc_se, d_rc_left_out = _component(drc_probe)
    p_rc, p_rc_se, p_rc_left_out = _component(prc_probe)
    d = _mean(d_probe)
    inside = 1.0 + d + _reciprocal(d_rc) + _reciprocal(p_rc)
    result = {
        "D": d,
        "D_se": _se(d_probe),
        "D_RC": d_rc,
        "D_RC_se": d_rc_se,
        "P_RC": p_rc,
        "P_RC_se": p_rc_se,
        "num_probes": float(num_probes),
        "D_RC_left_out": float(d_rc_left_out),
        "P_RC_left_out": float(p_rc_left_out),
    }
    if convention == "reference":
        result["D_prev"] = _mean(dprev_probe)
        result["D_prev_se"] = _se(dprev_probe)
        inside += result["D_prev"]
    result["RMQM"] = math.log(inside)
    return result


def reference_curves(embeddings, convention: str = "paper", normalize: bool = True) -> dict[str, list[float]]:
    """Per-level means over probes for j = 1..J (spike curves over the terms that exist; NaN if none)."""
    do_all, dp_all = distance_series(embeddings, normalize)
    num_steps = len(do_all[0])
    columns: dict[str, list[list[float]]] = {
        "distance_to_original": [[] for _ in range(num_steps)],
        "distance_to_previous": [[] for _ in range(num_steps)],
        "relative_change_to_original": [[] for _ in range(num_steps)],
        "relative_change_to_previous": [[] for _ in range(num_steps)],
    }
    for do_i, dp_i in zip(do_all, dp_all):
        do_terms, dp_terms = _terms(do_i, dp_i, convention)
        for j in range(num_steps):
            columns["distance_to_original"][j].append(do_i[j])
            columns["distance_to_previous"][j].append(dp_i[j])
            if do_terms[j] is not None:
                columns["relative_change_to_original"][j].append(do_terms[j])
            if dp_terms[j] is not None:
                columns["relative_change_to_previous"][j].append(dp_terms[j])
    curves: dict[str, list[float]] = {}
    for name, per_level in columns.items():
        curves[name] = [_mean(values) if values else math.nan for values in per_level]
        curves[f"{name}_se"] = [_se(values) for values in per_level]
    return curves
