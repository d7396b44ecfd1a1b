"""The collapse alarm: Lightning's own ``EarlyStopping`` on the collapse signals ``RMQMCallback`` logs.

One ``EarlyStopping`` per key, each never stopping for lack of improvement (``patience`` larger than
any run) and firing only on an absolute threshold (``divergence_threshold``) or a NaN/inf
(``check_finite``):

* ``rmqm/RankMe``, RankMe of the clean probe representations, ``mode="max"``: stops below
  :func:`rankme_threshold_for` (a dimensional collapse; 3 when ``min(N, d) >= 64``) and on NaN
  (non-finite representations);
* ``rmqm/noise/left_out/non_finite``, the share of probes with a non-finite representation on the
  noise trajectory, ``mode="min"``: stops above 0 (diverged weights);
* ``rmqm/noise/left_out/D_RC`` and ``/P_RC``, the shares of probes left out of D_RC and P_RC (their
  representation did not move between levels: a dead encoder), ``mode="min"``: stops above
  :data:`LEFT_OUT_THRESHOLD`.

The thresholds come from ``collapse_explore.py``'s 42 recorded runs (see
``examples/results/collapse_alarm_simulation.md``).
"""

from __future__ import annotations

from pytorch_lightning.callbacks import EarlyStopping

from rmqm_callback.keys import (
    ALPHA_REQ_KEY,
    D_RC_LEFT_OUT_KEY,
    NON_FINITE_KEY,
    P_RC_LEFT_OUT_KEY,
    RANKME_KEY,
    callback_key,
    metric_key,
)

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
#: More than this share of probes left out of a spike component: the encoder ignores its input.
LEFT_OUT_THRESHOLD = 0.5
#: Larger than any run: these EarlyStoppings must never stop for lack of improvement.
NEVER = 10**9


def rankme_threshold_for(num_probes: int, embedding_dim: int) -> float:
    """The RankMe threshold for a probe of ``num_probes`` and representations of size ``embedding_dim``.

    RankMe lies in ``[1, min(N, d)]``, but a collapsed encoder's RankMe (1.3-1.9 here) does not grow with d,
    while the lowest healthy RankMe does (2.7 at d = 16, 4.4 at d = 64, 7.3 at d = 128 with 64 probes).
    """
    return RANKME_THRESHOLD if min(num_probes, embedding_dim) >= 64 else RANKME_THRESHOLD_SMALL


def collapse_alarm(
    rankme_threshold: float = RANKME_THRESHOLD, left_out_threshold: float = LEFT_OUT_THRESHOLD
) -> list[EarlyStopping]:
    """The alarm: one ``EarlyStopping`` per key, firing on a threshold or a NaN/inf only, never on patience."""
    common = {"patience": NEVER, "check_finite": True, "verbose": False}
    return [
        EarlyStopping(KEYS["rankme"], mode="max", divergence_threshold=rankme_threshold, **common),
        EarlyStopping(KEYS["non_finite_share"], mode="min", divergence_threshold=0.0, **common),
        EarlyStopping(KEYS["D_RC_left_out_share"], mode="min", divergence_threshold=left_out_threshold, **common),
        EarlyStopping(KEYS["P_RC_left_out_share"], mode="min", divergence_threshold=left_out_threshold, **common),
    ]
