"""Under true half precision Lightning casts the whole LightningModule: an RMQM attribute keeps float64 states."""

from __future__ import annotations

import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import loaders, trainer
from test_callback import probe_tensor
from torch import nn

from rmqm_callback import RMQM, GaussianNoise, RMQMCallback
from rmqm_callback.functional import rmqm

PROBES, CHUNK = 1000, 10


def trajectories() -> torch.Tensor:
    return torch.randn(PROBES, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


class HoldsAMetric(pl.LightningModule):
    """A linear model with an RMQM attribute, updated in chunks once Lightning has cast the module."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        self.metric = RMQM()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x).float(), y)

    def on_train_end(self):
        self.state_dtype = self.metric.d_moments.dtype
        self.weight_dtype = self.net[1].weight.dtype
        for chunk in trajectories().split(CHUNK):
            self.metric.update(chunk)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.result = {key: float(value) for key, value in self.metric.compute().items()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-true", torch.bfloat16), ("16-true", torch.float16)])
def test_an_rmqm_attribute_keeps_exact_float64_counts_and_values_under_true_half_precision(
    tmp_path, precision, dtype
):
    module = HoldsAMetric()
    train, _ = loaders()
    trainer(tmp_path, max_epochs=1, precision=precision, limit_train_batches=1).fit(module, train)
    assert module.weight_dtype == dtype  # Lightning did cast the module
    assert module.state_dtype == torch.float64
    assert module.result["num_probes"] == PROBES  # in bfloat16, 1,000 probes in chunks of 10 counted 904
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = rmqm(trajectories())
    for key in ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se"):
        assert math.isclose(module.result[key], float(expected[key]), rel_tol=1e-12), key


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_the_callback_evaluates_under_true_half_precision(tmp_path, precision):
    class Linear(HoldsAMetric):
        def on_train_end(self):
            pass

        def validation_step(self, batch, batch_idx):
            pass

    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, max_epochs=1, precision=precision, callbacks=[callback]).fit(Linear(), *loaders())
    assert math.isfinite(callback.last_results["noise"]["RMQM"])
