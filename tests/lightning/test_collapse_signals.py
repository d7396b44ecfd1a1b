"""The collapse signals the callback logs from what it already embeds, and where TensorBoard shows them."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import TinyEncoder, loaders, trainer
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from test_callback import probe_tensor
from torch import nn

from rmqm_callback import PGD, GaussianNoise, RMQMCallback
from rmqm_callback.functional import alpha_req, rankme

BRIGHT = 6  # probes whose representation no noise of std <= 0.01 can move


class Saturating(pl.LightningModule):
    """``tanh(1000 x)``: exactly 1.0 in float32 for pixels above ~0.01, so bright probes never move."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return torch.tanh(1000 * x.flatten(1)) * self.weight.detach()

    def training_step(self, batch, batch_idx):
        return (self.weight - 1) ** 2

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _mixed_probe(n: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    probe = 1e-4 * torch.rand(n, 1, 4, 4, generator=generator)  # dim: tanh(1000 x) is nearly linear
    probe[:BRIGHT] = 0.5 + 0.5 * torch.rand(BRIGHT, 1, 4, 4, generator=generator)
    return probe


def test_the_shares_of_probes_left_out_are_logged(tmp_path):
    callback = RMQMCallback(_mixed_probe(), GaussianNoise(levels=6, max_std=0.01), batch_size=8)
    fit = trainer(tmp_path, max_epochs=1, callbacks=[callback])
    with pytest.warns(UserWarning, match=r"6 of 16 probes were left out"):
        fit.fit(Saturating(), *loaders())
    metrics = fit.callback_metrics
    assert float(metrics["rmqm/noise/left_out/D_RC"]) == BRIGHT / 16
    assert float(metrics["rmqm/noise/left_out/P_RC"]) == BRIGHT / 16
    assert float(metrics["rmqm/noise/left_out/non_finite"]) == 0.0
    assert int(callback.last_results["noise"]["num_probes"]) == 16


def test_logged_rankme_and_alpha_req_are_the_functional_ones_on_the_clean_probe(tmp_path):
    probe = probe_tensor(37)
    callback = RMQMCallback(probe, [GaussianNoise(levels=6), PGD(levels=3)], batch_size=8)
    fit = trainer(tmp_path, max_epochs=2, callbacks=[callback])
    pl.seed_everything(0, verbose=False)
    module = TinyEncoder()
    fit.fit(module, *loaders())
    module.eval()
    with torch.no_grad():
        clean = torch.cat([module(block) for block in probe.split(8)])
    assert float(fit.callback_metrics["rmqm/RankMe"]) == pytest.approx(float(rankme(clean)), rel=1e-12)
    assert float(fit.callback_metrics["rmqm/alpha_ReQ"]) == pytest.approx(float(alpha_req(clean)), rel=1e-12)
    assert "rmqm/pgd/RankMe" not in fit.callback_metrics  # once per callback, not per alteration


def test_spectral_false_logs_no_spectral_scores(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16, spectral=False)
    fit = trainer(tmp_path, max_epochs=1, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())
    assert "rmqm/noise/RMQM" in fit.callback_metrics and "rmqm/RankMe" not in fit.callback_metrics


# ------------------------------------------------------------------ TensorBoard


def _compare_tag_names(a: str, b: str) -> int:
    """TensorBoard's own order of the charts in a group (its ``compareTagNames``): '/' first, numbers as numbers."""
    i = j = 0
    while True:
        if i == len(a):
            return 0 if j == len(b) else -1
        if j == len(b):
            return 1
        if a[i].isdigit() and b[j].isdigit():
            start_i, start_j = i, j
            while i < len(a) and a[i].isdigit():
                i += 1
            while j < len(b) and b[j].isdigit():
                j += 1
            if int(a[start_i:i]) != int(b[start_j:j]):
                return -1 if int(a[start_i:i]) < int(b[start_j:j]) else 1
            continue
        a_break, b_break = a[i] == "/", b[j] == "/"
        if a_break != b_break:
            return -1 if a_break else 1
        if a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i += 1
        j += 1


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tensorboard")
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, logger=logger, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    accumulator = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_shows_the_collapse_signals_first_and_ses_and_seconds_last(events):
    group = [tag for tag in events.Tags()["scalars"] if tag.split("/", 1)[0] == "rmqm"]
    charts = sorted(group, key=functools.cmp_to_key(_compare_tag_names))
    assert charts[:2] == ["rmqm/RankMe", "rmqm/alpha_ReQ"]
    assert charts[2:6] == ["rmqm/noise/D", "rmqm/noise/D_RC", "rmqm/noise/P_RC", "rmqm/noise/RMQM"]
    assert charts[6:9] == ["rmqm/noise/left_out/D_RC", "rmqm/noise/left_out/P_RC", "rmqm/noise/left_out/non_finite"]
    assert charts[9:] == ["rmqm/noise/se/D", "rmqm/noise/se/D_RC", "rmqm/noise/se/P_RC", "rmqm/noise/seconds"]


def test_the_custom_scalars_dashboard_leads_with_rmqm_and_the_collapse_signals(events):
    (config,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    titles = [category.title for category in layout.category]
    assert titles == ["rmqm: RMQM and collapse signals", "rmqm: components", "rmqm: standard errors and seconds"]
    first = layout.category[0].chart
    assert [chart.title for chart in first] == ["RMQM", "RankMe", "alpha-ReQ", "left out (share of probes)"]
    assert list(first[0].multiline.tag) == [r"^rmqm/noise/RMQM$"]
    logged = set(events.Tags()["scalars"])
    for category in layout.category:  # every chart matches a logged tag
        for chart in category.chart:
            assert any(tag.strip("^$").replace("\\", "") in logged for tag in chart.multiline.tag), chart.title
