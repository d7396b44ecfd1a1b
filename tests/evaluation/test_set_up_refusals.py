"""What the set-up check refuses, and how it says so: the model's own errors, batches too small for PGD,
meta-device models, and guest passes too slow to finish; and the forecast it makes from the guest pass.

The timings come from a model that sleeps a known time per input, not from this machine's speed.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from tiny_models import mlp, probe_inputs
from torch import nn

from rmqm_callback import PGD, GaussianNoise, InputAlteration, RMQMCollapseWarning, score
from rmqm_callback.evaluation._guest_clock import GuestPassTooSlow
from rmqm_callback.evaluation._stream import FullPrecision, check_set_up
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe


class FailsOnCall(nn.Module):
    """A linear encoder whose forward raises on its ``fail_on``-th call (the model's own bug)."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 4).double()
        self.calls = 0
        self.fail_on = fail_on

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError(f"the model's own bug, on call {self.calls}")
        return self.linear(x.flatten(1))


class Sleepy(nn.Module):
    """A linear encoder that sleeps ``seconds`` per input in every forward pass: a model of known cost."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 4).double()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds * x.shape[0])
        return self.linear(x.flatten(1))


def _set_up(model, probe, alteration, batch_size, **settings):
    return check_set_up(
        "score()", model, Encoder(model), Probe(probe), {alteration.name: alteration}, precision=FullPrecision(),
        device=torch.device("cpu"), batch_size=batch_size, convention="paper", normalize=True, **settings,
    )  # fmt: skip


# ------------------------------------------------------------------ the model's own error


def test_the_models_error_on_a_noise_trajectory_is_the_models_with_level_and_shape():
    # call 1: the clean pass of 2 probes; then 12 levels of 2 probes in forward passes of batch_size=8 inputs:
    # levels 0-3 (call 2), 4-7 (call 3)
    with pytest.raises(ValueError) as raised:
        score(FailsOnCall(fail_on=3), probe_inputs(8), GaussianNoise(levels=12), batch_size=8)
    message = str(raised.value)
    assert message.startswith("score(): the model failed on the guest trajectory of alterations['noise'] = Gaussian")
    assert "at levels 4-7, in a forward pass of inputs of shape (8, 1, 4, 4), dtype torch.float64" in message
    assert "the clean forward pass of the same 2 probes worked" in message
    assert "labels" not in message and "loss" not in message  # GaussianNoise has neither
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert "the model's own bug, on call 3" in str(raised.value.__cause__)


def test_the_models_error_on_a_pgd_step_names_the_level_and_autograd():
    with pytest.raises(ValueError, match=r"the model failed on the guest trajectory of alterations\['pgd'\]") as raised:
        score(FailsOnCall(fail_on=4), probe_inputs(8), PGD(levels=5), batch_size=8)
    message = str(raised.value)
    assert "at level 2, in a forward pass of inputs of shape (2, 1, 4, 4)" in message
    assert "with autograd on" in message and "labels" not in message  # the default loss takes no labels
    assert isinstance(raised.value.__cause__, RuntimeError)


class BrokenAlteration(InputAlteration):
    name = "broken"

    def alter(self, inputs, indices, level):
        if level == 2:
            raise IndexError("the alteration's own bug")
        return inputs


def test_an_alterations_own_error_is_the_alterations():
    with pytest.raises(ValueError) as raised:
        score(mlp(), probe_inputs(8), BrokenAlteration(levels=4), batch_size=8)
    message = str(raised.value)
    assert message.startswith("alterations['broken'] = BrokenAlteration(levels=4): alter(inputs, indices,")
    assert "level=2) failed on inputs of shape (2, 1, 4, 4)" in message
    assert "model" not in message and "labels" not in message
    assert isinstance(raised.value.__cause__, IndexError)


class FailsInTrajectory(InputAlteration):
    """Passes the check of its outputs (its first ``levels`` calls), then raises in the trajectory."""

    name = "late"

    def __init__(self) -> None:
        super().__init__(levels=4)
        self.calls = 0

    def alter(self, inputs, indices, level):
        self.calls += 1
        if self.calls > self.levels:
            raise IndexError("the alteration's own bug, in the trajectory")
        return inputs


def test_an_input_alterations_error_in_the_trajectory_gets_no_labels_hint():
    with pytest.raises(ValueError) as raised:
        score(mlp(), probe_inputs(8), FailsInTrajectory(), batch_size=8)
    message = str(raised.value)
    assert message.startswith("score(): alterations['late'] = FailsInTrajectory(levels=4) failed on a guest trajectory")
    assert "model" not in message and "labels" not in message  # alter() sees no labels
    assert isinstance(raised.value.__cause__, IndexError)


def _needs_labels(output, clean, labels):
    return F.cross_entropy(output, labels)


def test_a_loss_error_keeps_the_labels_hint_where_the_loss_takes_labels():
    with pytest.raises(TypeError, match=r"alterations\['pgd'\] = PGD\(.*failed on a guest trajectory .*no labels"):
        score(mlp(), probe_inputs(8), PGD(levels=3, loss=_needs_labels), batch_size=8)


# ------------------------------------------------------------------ PGD's default loss needs two probes per batch


@pytest.mark.parametrize(
    ("probes", "batch_size", "match"),
    [
        (17, 16, r"17 probes in batches of batch_size=16 leave probe 16 in a batch of 1\. Use batch_size=15, or a"
         r" probe of 16 samples, or PGD\(loss=\.\.\.\)"),
        (1, 16, r"a probe of 1 sample is one batch of 1\. Use a probe of at least 2 samples"),
        (8, 1, r"batches of batch_size=1 hold 1 probe each\. Use batch_size=2"),
    ],
)  # fmt: skip
def test_pgd_with_a_one_probe_batch_is_refused_before_any_forward_pass(probes, batch_size, match):
    model = FailsOnCall(fail_on=1)  # any forward pass would raise
    with pytest.raises(ValueError, match=r"PGD\(.*needs at least 2 probes in every batch \(its default contrastive"):
        score(model, probe_inputs(probes), PGD(levels=3), batch_size=batch_size)
    with pytest.raises(ValueError, match=match):
        score(model, probe_inputs(probes), PGD(levels=3), batch_size=batch_size)
    assert model.calls == 0


def test_pgd_with_a_loss_of_its_own_takes_one_probe_batches():
    def own(output, clean, labels):
        return output.square().sum()

    result = score(mlp(), probe_inputs(17), PGD(levels=3, loss=own), batch_size=16)
    assert int(result["num_probes"]) == 17


def test_a_representation_that_really_collapsed_still_warns():
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.ones(4, dtype=torch.float64))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 4) + 0 * x.flatten(1)[:, :1]

    with pytest.warns(RMQMCollapseWarning, match="collapsed"):
        score(Constant(), probe_inputs(8), PGD(levels=3), batch_size=8)


# ------------------------------------------------------------------ a model on the meta device


def test_a_meta_device_model_is_refused_with_the_fix():
    with torch.device("meta"):
        model = mlp()
    with pytest.raises(ValueError, match=r"score\(\): the model's '1.weight' of shape \(10, 16\) is on the meta device"
                       r", which holds no data .*model.to_empty\(device='cpu'\)"):  # fmt: skip
        score(model, probe_inputs(8), GaussianNoise(levels=3))


# ------------------------------------------------------------------ the forecast, and guest passes too slow


def test_the_forecast_scales_the_guest_pass_to_the_probes_and_levels():
    seconds, probes, levels = 0.002, 40, 5
    forecast = _set_up(Sleepy(seconds), probe_inputs(probes), GaussianNoise(levels=levels), batch_size=8)
    assert forecast.guest_probes == 2 and forecast.num_probes == probes
    # the model sleeps for every input: an evaluation embeds probes x levels of them
    assert forecast.evaluation_seconds() >= probes * levels * seconds
    assert forecast.evaluation_seconds() < 20 * probes * levels * seconds + 1.0
    assert forecast.describe("score()").startswith(f"score(): one evaluation of {probes} probes is forecast at about")
    shared = _set_up(Sleepy(0.0), probe_inputs(probes), GaussianNoise(levels=levels), batch_size=8, world_size=2)
    assert shared.num_probes == 24  # the busiest of 2 processes scores blocks 0, 2, 4: 8 + 8 + 8 probes


def test_a_guest_pass_forecast_past_its_limit_is_refused_before_it_spends_the_time():
    model = Sleepy(0.005)  # 400 levels of 2 probes, one level per forward pass: 4 s
    start = time.perf_counter()
    with pytest.raises(GuestPassTooSlow) as raised:
        _set_up(model, probe_inputs(64), GaussianNoise(levels=400), batch_size=2, time_limit_s=2.0)
    assert time.perf_counter() - start < 3.0  # the 4 s were not spent
    message = str(raised.value)
    assert "the guest trajectory of alterations['noise'] = GaussianNoise(levels=400" in message
    assert "over its limit of 2 s" in message and "one evaluation of 64 probes would take more than" in message
    assert "Use fewer levels" in message
    forecast = float(message.split("is forecast at ")[1].split(" s")[0])
    assert forecast >= 2.0


def test_ten_million_noise_levels_are_refused_in_seconds_not_hours():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"guest pass of 2 probes.* is forecast at .*over its limit of 60 s"):
        score(mlp(), probe_inputs(8), GaussianNoise(levels=10**7))
    assert time.perf_counter() - start < 30
