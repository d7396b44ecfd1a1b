"""The collapse alarm (README recipe: Lightning's EarlyStopping on RMQMCallback's signals), in real digits fits.

The test configuration of ``examples/collapse_alarm.py fit``: 2 epochs, a 64-image held-out probe,
10 noise levels. It stops a run whose weights diverge and a run that collapses dimensionally (a
SimSiam-like loss without stop-gradient), at the first evaluation, and none of the healthy runs of
the study's methods and seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _collapse_recipe import KEYS, collapse_alarm, rankme_threshold_for
from _methods import METHODS
from collapse_alarm import alarm_fit
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

#: The study's five methods (train_digits.py's), two seeds each.
HEALTHY = [(method, seed) for method in METHODS for seed in (0, 1)]
RANKME, NON_FINITE = KEYS["rankme"], KEYS["non_finite_share"]


def _fit(method: str, optimizer: str, lr: float, seed: int) -> dict:
    run = {"run": f"{method}/{optimizer}-{lr:g}/s{seed}", "group": "test", "method": method,
           "optimizer": optimizer, "lr": lr, "seed": seed, "dim": 64}  # fmt: skip
    return alarm_fit(run, epochs=2, probe_size=64, levels=10, thresholds=(rankme_threshold_for(64, 64), 0.5))


@pytest.mark.parametrize(("method", "seed"), HEALTHY)
def test_the_alarm_never_stops_a_healthy_run(method, seed):
    out = _fit(method, "adam", 1e-3, seed)
    assert not out["stopped"] and out["evaluations"] == 2
    assert set(out["reasons"].values()) == {EarlyStoppingReason.NOT_STOPPED}
    assert min(out["rankmes"]) > rankme_threshold_for(64, 64)


def test_the_alarm_stops_a_dimensional_collapse_at_the_first_evaluation():
    out = _fit("simsiam-no-stopgrad", "adam", 1e-2, 0)
    assert out["stopped"] and out["evaluations"] == 1
    assert out["reasons"][RANKME] == EarlyStoppingReason.DIVERGENCE_THRESHOLD
    assert out["rankmes"][0] < 2.0


@pytest.mark.parametrize(
    ("method", "optimizer", "lr", "reason"),
    [
        ("cross-entropy", "sgd", 1.0, EarlyStoppingReason.NON_FINITE_METRIC),  # NaN weights
        ("nt-xent", "adam", 10.0, EarlyStoppingReason.DIVERGENCE_THRESHOLD),  # finite, but collapsed
    ],
)
def test_the_alarm_stops_a_run_whose_learning_rate_is_far_too_high(method, optimizer, lr, reason):
    out = _fit(method, optimizer, lr, 0)
    assert out["stopped"] and out["evaluations"] == 1
    assert out["reasons"][RANKME] == reason
    if reason == EarlyStoppingReason.NON_FINITE_METRIC:
        assert out["reasons"][NON_FINITE] == EarlyStoppingReason.DIVERGENCE_THRESHOLD


def test_the_alarm_watches_the_keys_the_callback_logs():
    monitors = [stopper.monitor for stopper in collapse_alarm()]
    assert monitors == [
        "rmqm/RankMe", "rmqm/noise/left_out/non_finite", "rmqm/noise/left_out/D_RC", "rmqm/noise/left_out/P_RC"
    ]
    assert all(stopper.patience >= 10**9 and stopper.check_finite for stopper in collapse_alarm())
