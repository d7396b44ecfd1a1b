"""The Custom Scalars layout the callback writes to TensorBoard, RMQM first (the figure: :mod:`._loggers`).

Scalars go through ``pl_module.log`` like any metric. TensorBoard's default dashboard sorts the
charts of the ``{prefix}`` group by name (see :mod:`rmqm_callback.keys`); its *Custom Scalars*
dashboard shows the layout written here, in this order: RMQM (and the k-NN accuracy of a labelled
probe) and the collapse signals, then the components, then standard errors and seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rmqm_callback.keys import (
    ALPHA_REQ_KEY,
    D_KEY,
    D_PREV_KEY,
    D_RC_KEY,
    D_RC_LEFT_OUT_KEY,
    KNN_ACCURACY_KEY,
    NON_FINITE_KEY,
    P_RC_KEY,
    P_RC_LEFT_OUT_KEY,
    RANKME_KEY,
    RMQM_KEY,
    SE_PREFIX,
    SECONDS_KEY,
)


def _chart(tags: Iterable[str]) -> list[Any]:
    return ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]]


def layout(
    prefix: str, names: Iterable[str], spectral: bool, reference: bool = False, knn: bool = False
) -> dict[str, dict[str, list[Any]]]:
    """The Custom Scalars layout: ``{category: {chart: ["Multiline", [tag regexes]]}}``, headline first.

    Examples:
        >>> sorted(layout("rmqm", ["noise"], spectral=True)["rmqm: RMQM and collapse signals"])
        ['RMQM', 'RankMe', 'alpha-ReQ', 'left out (share of probes)']

    """
    names = list(names)

    def per_alteration(quantity: str) -> list[str]:
        return [f"{prefix}/{name}/{quantity}" for name in names]

    headline = {"RMQM": _chart(per_alteration(RMQM_KEY))}
    if knn:
        headline["k-NN accuracy"] = _chart([f"{prefix}/{KNN_ACCURACY_KEY}"])
    if spectral:
        headline["RankMe"] = _chart([f"{prefix}/{RANKME_KEY}"])
        headline["alpha-ReQ"] = _chart([f"{prefix}/{ALPHA_REQ_KEY}"])
    left_out = [tag for key in (D_RC_LEFT_OUT_KEY, P_RC_LEFT_OUT_KEY, NON_FINITE_KEY) for tag in per_alteration(key)]
    headline["left out (share of probes)"] = _chart(left_out)
    quantities = (D_KEY, D_RC_KEY, P_RC_KEY, *((D_PREV_KEY,) if reference else ()))
    components = {quantity: _chart(per_alteration(quantity)) for quantity in quantities}
    details = {f"SE of {quantity}": _chart(per_alteration(SE_PREFIX + quantity)) for quantity in components}
    details[SECONDS_KEY] = _chart(per_alteration(SECONDS_KEY))
    return {
        f"{prefix}: RMQM and collapse signals": headline,
        f"{prefix}: components": components,
        f"{prefix}: standard errors and seconds": details,
    }
