"""Names under which :class:`~rmqm_callback.RMQMCallback` logs, as public constants.

Each alteration ``name`` (``"noise"`` for :class:`~rmqm_callback.GaussianNoise`, ``"pgd"`` for
:class:`~rmqm_callback.PGD`, or the key of an alterations dict) gets the keys
``{prefix}/{name}/{quantity}``, for example ``rmqm/noise/RMQM``. The spectral collapse signals of
the clean probe, and the k-NN accuracy of a labelled probe, are logged once per callback, as
``{prefix}/{quantity}`` (``rmqm/RankMe``, ``rmqm/knn_accuracy``).

The names are chosen so that TensorBoard, which sorts the charts of a group (``rmqm``) by name,
shows the collapse signals first, then the k-NN accuracy (before every alteration whose name sorts
after ``knn_accuracy``, such as ``noise`` and ``pgd``), then each alteration's ``D``, ``D_RC``,
``P_RC`` and ``RMQM``, then the left-out shares, and the standard errors and seconds last.

Examples:
    >>> metric_key("rmqm", "noise", RMQM_KEY)
    'rmqm/noise/RMQM'
    >>> metric_key("rmqm", "noise", se_key(D_RC_KEY))
    'rmqm/noise/se/D_RC'
    >>> callback_key("rmqm", RANKME_KEY)
    'rmqm/RankMe'

"""

from __future__ import annotations

#: The metric itself (higher is better): monitor it with ``mode="max"``.
RMQM_KEY = "RMQM"
#: Mean distance to the original representation (eq. 1).
D_KEY = "D"
#: Mean relative change of the distance to the original (eq. 2).
D_RC_KEY = "D_RC"
#: Mean relative change of the distance to the previous level (eq. 3).
P_RC_KEY = "P_RC"
#: Mean distance to the previous level (logged with ``convention="reference"`` only).
D_PREV_KEY = "D_prev"
#: Share of probes (0 to 1) left out of ``D_RC``: no relative-change term exists (zero distances).
D_RC_LEFT_OUT_KEY = "left_out/D_RC"
#: Share of probes (0 to 1) left out of ``P_RC``.
P_RC_LEFT_OUT_KEY = "left_out/P_RC"
#: Share of probes (0 to 1) whose representations were not finite (NaN/inf) at some level.
NON_FINITE_KEY = "left_out/non_finite"
#: Prefix of the standard error over probes of a component: ``se/D_RC`` (see :func:`se_key`).
SE_PREFIX = "se/"
#: Wall-clock seconds the evaluation of one alteration took (slowest process).
SECONDS_KEY = "seconds"
#: TensorBoard figure tag of the per-level curves.
CURVES_KEY = "curves"
#: RankMe of the clean probe's representations (logged once per callback, ``{prefix}/RankMe``).
RANKME_KEY = "RankMe"
#: alpha-ReQ of the clean probe's representations (logged once per callback).
ALPHA_REQ_KEY = "alpha_ReQ"
#: Leave-one-out k-NN accuracy of the clean probe's representations (a probe with labels; once per callback).
KNN_ACCURACY_KEY = "knn_accuracy"


def se_key(quantity: str) -> str:
    """The quantity name of the standard error of ``quantity``: ``se/{quantity}``."""
    return f"{SE_PREFIX}{quantity}"


#: Quantities logged for every alteration, in this order.
LOGGED_QUANTITIES = (
    RMQM_KEY,
    D_KEY,
    D_RC_KEY,
    P_RC_KEY,
    D_RC_LEFT_OUT_KEY,
    P_RC_LEFT_OUT_KEY,
    NON_FINITE_KEY,
    se_key(D_KEY),
    se_key(D_RC_KEY),
    se_key(P_RC_KEY),
)
#: Extra quantities logged with ``convention="reference"``.
REFERENCE_QUANTITIES = (D_PREV_KEY, se_key(D_PREV_KEY))
#: Quantities logged once per callback (``spectral=True``), from the clean level of the probe.
SPECTRAL_QUANTITIES = (RANKME_KEY, ALPHA_REQ_KEY)


def metric_key(prefix: str, name: str, quantity: str) -> str:
    """The logged key of ``quantity`` for alteration ``name``: ``{prefix}/{name}/{quantity}``."""
    return f"{prefix}/{name}/{quantity}"


def callback_key(prefix: str, quantity: str) -> str:
    """The logged key of a quantity logged once per callback: ``{prefix}/{quantity}``."""
    return f"{prefix}/{quantity}"
