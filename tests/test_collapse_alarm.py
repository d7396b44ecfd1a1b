"""The collapse alarm in real fits of the studies' encoders: the digits' recipe; the package default on three data sets.

The test configuration of ``examples/collapse_alarm.py fit``: 2 epochs, a 64-input held-out probe,
10 noise levels. On the digits, the recipe (``rmqm_callback.collapse_alarm`` with the digits' RankMe
rule) stops a run whose weights diverge and a run that collapses dimensionally (a SimSiam-like loss
without stop-gradient), at the first evaluation, and none of the healthy runs of the study's methods
and seeds. On the digits, MNIST-1D and the glyphs, the package's default alarm (RankMe not watched)
stops the run whose weights diverge to NaN and not the healthy triplet-supervised run whose RankMe
stays near 1 on MNIST-1D.
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


def _fit(method: str, optimizer: str, lr: float, seed: int, dataset: str = "digits", cache_dir=None, **kw) -> dict:
    run = {"run": f"{method}/{optimizer}-{lr:g}/s{seed}", "group": "test", "method": method,
           "optimizer": optimizer, "lr": lr, "seed": seed, "dim": 64}  # fmt: skip
    thresholds = (kw.get("rankme_threshold", rankme_threshold_for(64, 64)), 0.5)
    return alarm_fit(
        run, epochs=2, probe_size=64, levels=10, thresholds=thresholds, dataset=dataset, cache_dir=cache_dir
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One cache of the generated data sets for this module's fits."""
    return tmp_path_factory.mktemp("data_cache")


@pytest.mark.parametrize("dataset", ["digits", "mnist1d", "glyphs"])
def test_the_package_alarm_stops_a_diverged_run_and_not_a_healthy_one_on_each_data_set(dataset, cache_dir):
    healthy = _fit("triplet-supervised", "adam", 1e-3, 0, dataset, cache_dir, rankme_threshold=None)
    assert not healthy["stopped"] and healthy["evaluations"] == 2
    assert set(healthy["reasons"].values()) == {EarlyStoppingReason.NOT_STOPPED}
    assert RANKME not in healthy["reasons"]  # RankMe is not watched by default
    diverged = _fit("cross-entropy", "sgd", 1.0, 0, dataset, cache_dir, rankme_threshold=None)
    assert diverged["stopped"] and diverged["evaluations"] == 1
    assert diverged["reasons"][NON_FINITE] == EarlyStoppingReason.DIVERGENCE_THRESHOLD


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
        "rmqm/RankMe",
        "rmqm/noise/left_out/non_finite",
        "rmqm/noise/left_out/D_RC",
        "rmqm/noise/left_out/P_RC",
    ]
    assert all(stopper.patience >= 10**9 and stopper.check_finite for stopper in collapse_alarm())
