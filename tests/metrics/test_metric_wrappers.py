"""The metrics with torchmetrics' own machinery: ``torch.jit.script`` and the wrappers, each the real one."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.wrappers import BootStrapper, MetricTracker, MinMaxMetric, Running

from rmqm_callback import RMQM, SpectralScores
from rmqm_callback.functional import rankme, rmqm
from rmqm_callback.metrics import ScalarView


def _trajectories(n: int = 24, seed: int = 0, spread: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    steps = torch.linspace(0, 1, 6, dtype=torch.float64).view(1, 6, 1) * spread
    return torch.randn(n, 6, 8, generator=generator, dtype=torch.float64) * 0.1 + steps * torch.randn(
        n, 1, 8, generator=generator, dtype=torch.float64
    )


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ torch.jit.script, as torchmetrics' own metrics


@pytest.mark.parametrize("metric_class", [RMQM, SpectralScores])
def test_the_metrics_script_like_torchmetrics_metrics(metric_class):
    scripted = torch.jit.script(metric_class())
    assert isinstance(scripted, torch.jit.ScriptModule)

    class Holder(nn.Module):  # a model that keeps a metric as an attribute, scripted for deployment
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.metric = metric_class()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    holder = Holder()
    inputs = torch.randn(4, 3)
    assert torch.equal(torch.jit.script(holder)(inputs), holder(inputs))
    # as for torchmetrics' metrics, the scripted copy holds the states; update and compute stay Python
    assert not hasattr(scripted, "update")


# ------------------------------------------------------------------ ScalarView


def test_scalar_view_computes_one_quantity_and_says_which_way_is_better():
    trajectories = _trajectories()
    expected = rmqm(trajectories)
    for quantity, better in [("RMQM", True), ("D", True), ("D_RC", False), ("P_RC", False), ("D_se", None)]:
        view = ScalarView(RMQM(), quantity)
        view.update(trajectories[:10])
        view.update(trajectories[10:])
        assert torch.allclose(view.compute(), expected[quantity], rtol=1e-12)
        assert view.higher_is_better is better
    assert set(RMQM().quantities) == set(expected)
    assert set(RMQM(convention="reference").quantities) == set(rmqm(trajectories, convention="reference"))
    view = ScalarView(SpectralScores(), "RankMe")
    view.update(trajectories[:, 0])
    assert torch.allclose(view.compute(), rankme(trajectories[:, 0]), rtol=1e-12)
    assert view.higher_is_better is True


def test_scalar_view_refuses_a_quantity_the_metric_does_not_compute():
    with pytest.raises(ValueError, match=r"got 'D_prev'; RMQM computes RMQM, D, D_RC"):
        ScalarView(RMQM(), "D_prev")  # the reference convention's
    with pytest.raises(TypeError, match=r"`metric` must be a torchmetrics.Metric, got dict"):
        ScalarView({}, "RMQM")


def test_scalar_view_forward_returns_the_batch_value_and_accumulates():
    trajectories = _trajectories()
    view = ScalarView(RMQM(), "RMQM")
    assert torch.allclose(view(trajectories[:12]), rmqm(trajectories[:12])["RMQM"], rtol=1e-12)
    view(trajectories[12:])
    assert torch.allclose(view.compute(), rmqm(trajectories)["RMQM"], rtol=1e-12)
    view.reset()
    assert view.metric.d_moments.sum() == 0


# ------------------------------------------------------------------ the wrappers


def test_metric_tracker_finds_the_best_epoch_through_a_scalar_view():
    tracker = MetricTracker(ScalarView(RMQM(), "RMQM"))  # maximize from higher_is_better
    values = []
    for epoch, spread in enumerate([1.0, 3.0, 2.0]):
        tracker.increment()
        tracker.update(_trajectories(spread=spread, seed=epoch))
        values.append(float(rmqm(_trajectories(spread=spread, seed=epoch))["RMQM"]))
    best, step = tracker.best_metric(return_step=True)
    assert step == max(range(3), key=values.__getitem__)
    assert best == pytest.approx(max(values), rel=1e-12)
    minimum = MetricTracker(ScalarView(RMQM(), "P_RC"))
    assert minimum.maximize is False


def test_metric_tracker_of_a_bare_rmqm_still_fails_as_torchmetrics_does():
    """The failure the view exists for: MetricTracker takes torch.max of the dict."""
    tracker = MetricTracker(RMQM())
    tracker.increment()
    tracker.update(_trajectories())
    with pytest.raises(TypeError, match=r"max\(\) received an invalid combination of arguments"):
        tracker.best_metric()


def test_bootstrapper_resamples_probes_through_a_scalar_view():
    trajectories = _trajectories(n=40)
    boot = BootStrapper(ScalarView(RMQM(), "RMQM"), num_bootstraps=20, raw=True)
    torch.manual_seed(0)
    boot.update(trajectories)
    result = boot.compute()
    assert result["raw"].shape == (20,)
    assert float(result["std"]) > 0  # resampling probes changes RMQM
    full = float(rmqm(trajectories)["RMQM"])
    assert abs(float(result["mean"]) - full) < 4 * float(result["std"]) + 1e-9
    spectral = BootStrapper(ScalarView(SpectralScores(), "RankMe"), num_bootstraps=5)
    spectral.update(trajectories[:, 0])
    assert torch.isfinite(spectral.compute()["mean"])


def test_min_max_metric_tracks_a_scalar_view():
    minmax = MinMaxMetric(ScalarView(RMQM(), "D"))
    values = []
    for spread in (1.0, 3.0, 2.0):  # D of the probes so far, after each chunk
        minmax.update(_trajectories(spread=spread))
        values.append(float(minmax.compute()["raw"]))
    assert float(minmax.min_val) == pytest.approx(min(values), rel=1e-12)
    assert float(minmax.max_val) == pytest.approx(max(values), rel=1e-12)
    assert min(values) < max(values)


def test_metric_collection_takes_the_dicts_as_they_are():
    trajectories = _trajectories()
    collection = MetricCollection({"rmqm": RMQM(), "spectral": SpectralScores()})
    collection["rmqm"].update(trajectories)
    collection["spectral"].update(trajectories[:, 0])
    result = collection.compute()
    assert torch.equal(result["RMQM"], rmqm(trajectories)["RMQM"])
    assert torch.equal(result["RankMe"], rankme(trajectories[:, 0]))
    tracker = MetricTracker(MetricCollection([RMQM()]), maximize=True)  # the collection way, too
    tracker.increment()
    tracker.update(trajectories)
    assert tracker.best_metric()["RMQM"] == pytest.approx(float(rmqm(trajectories)["RMQM"]), rel=1e-12)


def test_running_rmqm_over_the_last_updates():
    chunks = [_trajectories(seed=seed) for seed in range(3)]
    running = Running(RMQM(), window=2)
    for chunk in chunks:
        running.update(chunk)
    window = torch.cat(chunks[1:])
    assert torch.allclose(running.compute()["RMQM"], rmqm(window)["RMQM"], rtol=1e-12)
    view = ScalarView(Running(RMQM(), window=2), "RMQM")  # a scalar view of the window
    for chunk in chunks:
        view.update(chunk)
    assert torch.allclose(view.compute(), rmqm(window)["RMQM"], rtol=1e-12)


def test_running_cannot_wrap_spectral_scores_and_says_why():
    running = Running(SpectralScores(), window=2)
    running.update(_trajectories()[:, 0])
    with pytest.raises(
        ValueError, match=r"Running wrapper keeps them by reference.*Running cannot wrap SpectralScores"
    ):
        running.compute()
