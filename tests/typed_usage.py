"""A user's typed script of the public API, checked by mypy in ``test_package.py`` (not run).

It must type-check as written: the package ships ``py.typed``, so a user's mypy sees these types.
"""

from __future__ import annotations

import lightning.pytorch as L
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from typing_extensions import assert_type

import rmqm_callback
from rmqm_callback import PGD, RMQM, GaussianNoise, InputAlteration, RMQMCallback, SpectralScores, score
from rmqm_callback.functional import alpha_req, rankme, rmqm
from rmqm_callback.keys import RMQM_KEY, metric_key


class Darken(InputAlteration):
    name = "darken"

    def alter(self, inputs: Tensor, indices: Tensor, level: int) -> Tensor:
        return inputs * (1 - level / self.levels)


def callbacks_for_both_trainers(probe: Tensor) -> tuple[pl.Trainer, L.Trainer]:
    monitor = metric_key("rmqm", "noise", RMQM_KEY)
    callback = RMQMCallback(probe, {"noise": GaussianNoise(levels=20), "pgd": PGD(levels=5)}, every_n_epochs=2)
    unified = L.Trainer(callbacks=[callback, L.callbacks.ModelCheckpoint(monitor=monitor, mode="max")])
    classic = pl.Trainer(callbacks=[RMQMCallback(64, Darken(levels=5), spectral=False)])
    return classic, unified


def offline(model: nn.Module, probe: Tensor) -> float:
    result = score(model, probe, GaussianNoise(levels=10), batch_size=64)
    assert_type(result, dict[str, Tensor])
    metric = RMQM(convention="reference")
    metric.update(torch.randn(8, 5, 3))
    assert_type(metric.compute(), dict[str, Tensor])
    spectrum = SpectralScores()
    spectrum.update(torch.randn(8, 3))
    assert_type(rankme(torch.randn(8, 3)), Tensor)
    assert_type(alpha_req(torch.randn(8, 3)), Tensor)
    assert_type(rmqm(torch.randn(8, 5, 3)), dict[str, Tensor])
    assert_type(rmqm_callback.__version__, str)
    return float(result["RMQM"])
