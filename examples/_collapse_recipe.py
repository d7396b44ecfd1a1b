"""The digits' collapse alarm: :func:`rmqm_callback.collapse_alarm` with its RankMe rule switched on.

The package's alarm watches the non-finite share and the left-out shares of the noise trajectory
(see :mod:`rmqm_callback.lightning.collapse_alarm`). On the 8x8 digits a RankMe threshold also holds:
healthy runs stay above it and SimSiam without stop-gradient, or far too high learning rates, fall
below it, so the digits' examples pass ``rankme_threshold``. On MNIST-1D and the glyphs the same
threshold stops healthy runs (``examples/results/collapse_runs_summary.md``): do not carry it to other
data without a replay (``collapse_alarm.py simulate``).

The thresholds come from ``collapse_explore.py``'s 42 recorded digits runs (see
``examples/results/collapse_alarm_simulation.md``).
"""

from __future__ import annotations

import rmqm_callback
from rmqm_callback.keys import (
    ALPHA_REQ_KEY,
    D_RC_LEFT_OUT_KEY,
    NON_FINITE_KEY,
    P_RC_LEFT_OUT_KEY,
    RANKME_KEY,
    callback_key,
    metric_key,
)
from rmqm_callback.lightning.collapse_alarm import LEFT_OUT_THRESHOLD, CollapseStopping

#: The keys the alarm watches, as ``RMQMCallback(prefix="rmqm")`` logs them for ``GaussianNoise`` (``noise``).
KEYS = {
    "rankme": callback_key("rmqm", RANKME_KEY),
    "alpha_req": callback_key("rmqm", ALPHA_REQ_KEY),
    "non_finite_share": metric_key("rmqm", "noise", NON_FINITE_KEY),
    "D_RC_left_out_share": metric_key("rmqm", "noise", D_RC_LEFT_OUT_KEY),
    "P_RC_left_out_share": metric_key("rmqm", "noise", P_RC_LEFT_OUT_KEY),
}
#: RankMe below this is a collapse when ``min(N, d) >= 64`` (N probes, d features): healthy digits runs stay
#: above 4.4 (lowest: triplet-supervised after its first epoch), collapsed or diverged ones fall to 1.3-1.9.
RANKME_THRESHOLD = 3.0
#: The threshold for smaller ``min(N, d)`` (measured at d = 16 only: healthy runs stay above 2.69).
RANKME_THRESHOLD_SMALL = 2.0


def rankme_threshold_for(num_probes: int, embedding_dim: int) -> float:
    """The digits' RankMe threshold for a probe of ``num_probes`` and representations of size ``embedding_dim``.

    RankMe lies in ``[1, min(N, d)]``, but a collapsed encoder's RankMe (1.3-1.9 here) does not grow with d,
    while the lowest healthy RankMe does (2.7 at d = 16, 4.4 at d = 64, 7.3 at d = 128 with 64 probes).
    """
    return RANKME_THRESHOLD if min(num_probes, embedding_dim) >= 64 else RANKME_THRESHOLD_SMALL


def collapse_alarm(
    rankme_threshold: float | None = RANKME_THRESHOLD, left_out_threshold: float = LEFT_OUT_THRESHOLD
) -> list[CollapseStopping]:
    """The package's alarm with the digits' RankMe rule (``rankme_threshold=None``: the package's default)."""
    return rmqm_callback.collapse_alarm(rankme_threshold=rankme_threshold, left_out_threshold=left_out_threshold)
