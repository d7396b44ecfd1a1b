"""Names under which :class:`~rmqm_callback.RMQMCallback` logs, as public constants.

Each alteration ``name`` (``"noise"`` for :class:`~rmqm_callback.GaussianNoise`, ``"pgd"`` for
:class:`~rmqm_callback.PGD`, or the key of an alterations dict) gets the keys
``{prefix}/{name}/{quantity}``, for example ``rmqm/noise/RMQM``.

Example:
    >>> metric_key("rmqm", "noise", RMQM_KEY)
    'rmqm/noise/RMQM'

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
#: Suffix of the standard error over probes of a component, e.g. ``D_RC_se``.
SE_SUFFIX = "_se"
#: Wall-clock seconds the evaluation of one alteration took (slowest process).
SECONDS_KEY = "seconds"
#: TensorBoard figure tag of the per-level curves.
CURVES_KEY = "curves"

#: Quantities logged for every alteration, in this order.
LOGGED_QUANTITIES = (
    RMQM_KEY,
    D_KEY,
    D_RC_KEY,
    P_RC_KEY,
    D_KEY + SE_SUFFIX,
    D_RC_KEY + SE_SUFFIX,
    P_RC_KEY + SE_SUFFIX,
)
#: Extra quantities logged with ``convention="reference"``.
REFERENCE_QUANTITIES = (D_PREV_KEY, D_PREV_KEY + SE_SUFFIX)


def metric_key(prefix: str, name: str, quantity: str) -> str:
    """The logged key of ``quantity`` for alteration ``name``: ``{prefix}/{name}/{quantity}``."""
    return f"{prefix}/{name}/{quantity}"
