"""``rmqm_callback.collapse_alarm()``: Lightning ``EarlyStopping``s of both namespaces, in real fits.

A run whose weights diverge to NaN and a run whose encoder ignores its input are stopped at the
first evaluation; a healthy run is not, under ``pytorch_lightning`` and ``lightning.pytorch``.
The fits on the studies' data sets are in ``tests/test_collapse_alarm.py``.
"""

from __future__ import annotations

import warnings

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import TINY_ENCODERS, digits_like_data, loaders, trainer
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

import rmqm_callback
from rmqm_callback import GaussianNoise, RMQMCallback, collapse_alarm
from rmqm_callback.lightning.collapse_alarm import NEVER

NAMESPACE_NAMES = sorted(TINY_ENCODERS)
NON_FINITE, D_RC_LEFT_OUT, P_RC_LEFT_OUT = (
    "rmqm/noise/left_out/non_finite",
    "rmqm/noise/left_out/D_RC",
    "rmqm/noise/left_out/P_RC",
)


def test_the_default_alarm_watches_the_failure_signals_of_the_noise_trajectory():
    alarm = collapse_alarm()
    assert [(s.monitor, s.mode, s.divergence_threshold) for s in alarm] == [
        (NON_FINITE, "min", 0.0),
        (D_RC_LEFT_OUT, "min", 0.5),
        (P_RC_LEFT_OUT, "min", 0.5),
    ]
    for stopper in alarm:
        assert isinstance(stopper, pl.callbacks.EarlyStopping) and isinstance(stopper, L.Callback)
        assert stopper.patience == NEVER and stopper.check_finite and stopper.stopping_threshold is None
    assert rmqm_callback.collapse_alarm is collapse_alarm


def test_rankme_is_watched_only_when_a_threshold_is_given_and_names_follow_prefix_and_alteration():
    alarm = collapse_alarm("probe", "pgd", left_out_threshold=0.25, rankme_threshold=3)
    assert [(s.monitor, s.mode, s.divergence_threshold) for s in alarm] == [
        ("probe/RankMe", "max", 3.0),
        ("probe/pgd/left_out/non_finite", "min", 0.0),
        ("probe/pgd/left_out/D_RC", "min", 0.25),
        ("probe/pgd/left_out/P_RC", "min", 0.25),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prefix": ""}, ValueError, r"prefix=''"),
        ({"prefix": "rmqm/"}, ValueError, r"prefix='rmqm/'.*for example prefix='rmqm'"),
        ({"alteration": 3}, ValueError, r"alteration=3.*for example alteration='noise'"),
        ({"left_out_threshold": 1.0}, ValueError, r"left_out_threshold=1.0.*\[0, 1\)"),
        ({"left_out_threshold": -0.1}, ValueError, r"`left_out_threshold` must be >= 0, got -0.1"),
        ({"left_out_threshold": float("nan")}, ValueError, r"`left_out_threshold` must be finite, got nan"),
        ({"left_out_threshold": "0.5"}, TypeError, r"`left_out_threshold` must be a number, got '0.5'"),
        ({"left_out_threshold": True}, TypeError, r"`left_out_threshold` must be a number, got True"),
        ({"rankme_threshold": 1.0}, ValueError, r"rankme_threshold=1.0.*above 1"),
        ({"rankme_threshold": float("inf")}, ValueError, r"`rankme_threshold` must be finite, got inf"),
        ({"rankme_threshold": "3"}, TypeError, r"`rankme_threshold` must be a number, got '3'"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_with_its_argument_and_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        collapse_alarm(**kwargs)


def _fit(tmp_path, namespace: str, lr: float, dead: bool = False) -> tuple[list, int, list[str]]:
    """A 3-epoch fit with the callback and the alarm: each stopper's reason, the epochs run, the warnings given."""
    alarm = collapse_alarm()
    torch.manual_seed(0)
    model = TINY_ENCODERS[namespace](lr=lr)
    probe = digits_like_data(64, seed=5)[0]
    # dead: the encoder sees zeros whatever the probe, as one that ignores its input would
    callback = RMQMCallback(
        probe, GaussianNoise(levels=10), batch_size=64, preprocess=torch.zeros_like if dead else None
    )
    fit = trainer(tmp_path, namespace=namespace, max_epochs=3, callbacks=[callback, *alarm])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(model, *loaders())
    return [stopper.stopping_reason for stopper in alarm], fit.current_epoch, [str(w.message) for w in caught]


@pytest.mark.parametrize("namespace", NAMESPACE_NAMES)
def test_a_healthy_fit_runs_to_the_end(tmp_path, namespace):
    reasons, epochs, _ = _fit(tmp_path, namespace, lr=0.05)
    assert reasons == [EarlyStoppingReason.NOT_STOPPED] * 3 and epochs == 3


@pytest.mark.parametrize("namespace", NAMESPACE_NAMES)
def test_a_fit_whose_weights_diverge_is_stopped_at_the_first_evaluation(tmp_path, namespace):
    reasons, epochs, said = _fit(tmp_path, namespace, lr=1e12)
    assert any("non-finite (NaN/inf) representations for 64 probes" in message for message in said)
    assert epochs == 1
    assert reasons[0] == EarlyStoppingReason.DIVERGENCE_THRESHOLD  # every representation NaN: share 1 > 0


@pytest.mark.parametrize("namespace", NAMESPACE_NAMES)
def test_a_fit_whose_encoder_ignores_its_input_is_stopped_at_the_first_evaluation(tmp_path, namespace):
    reasons, epochs, said = _fit(tmp_path, namespace, lr=0.05, dead=True)
    assert any("64 of 64 probes were left out of a spike component" in message for message in said)
    assert epochs == 1
    assert reasons == [EarlyStoppingReason.NOT_STOPPED, *[EarlyStoppingReason.DIVERGENCE_THRESHOLD] * 2]
