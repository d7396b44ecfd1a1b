"""Which loggers get the curves figure: TensorBoard, W&B and MLflow of either namespace (and subclasses); no other."""

from __future__ import annotations

import csv
import warnings
from types import SimpleNamespace

import pytest
from lightning_helpers import NAMESPACES, TinyEncoder, digits_like_data, loaders, trainer
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.lightning import callback as callback_module
from rmqm_callback.lightning._loggers import figure_loggers


class MyTensorBoardLogger(TensorBoardLogger):
    """A user's subclass."""


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_the_image_loggers_of_either_namespace_take_the_figure_and_a_csv_logger_does_not(tmp_path, namespace):
    loggers = NAMESPACES[namespace].loggers
    images = [
        loggers.TensorBoardLogger(str(tmp_path)),
        loggers.WandbLogger(save_dir=str(tmp_path), offline=True),  # no run is started until it logs
        loggers.MLFlowLogger(tracking_uri="http://127.0.0.1:9"),  # nothing is sent until it logs
        MyTensorBoardLogger(str(tmp_path)),
    ]
    others = [loggers.CSVLogger(str(tmp_path))]
    assert figure_loggers(SimpleNamespace(loggers=[others[0], *images])) == images


def refuse_to_draw(*args, **kwargs):
    raise AssertionError("the curves were drawn for a logger that takes no images")


def test_a_csv_logger_gets_the_scalars_no_figure_is_drawn_and_nothing_is_said(tmp_path, monkeypatch):
    monkeypatch.setattr(callback_module, "plot_curves", refuse_to_draw)
    logger = CSVLogger(str(tmp_path), name="csv")
    callback = RMQMCallback(digits_like_data(40, seed=7)[0], GaussianNoise(levels=6), batch_size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path, logger=logger, max_epochs=2, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    assert [str(w.message) for w in caught if "RMQM" in str(w.message) or "rmqm" in str(w.message)] == []
    with open(f"{logger.log_dir}/metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["rmqm/noise/RMQM"]]
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert not any("curves" in column for column in rows[0])
