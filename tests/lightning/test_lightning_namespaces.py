"""One RMQMCallback for both Lightning front doors: ``pytorch_lightning`` and ``lightning.pytorch``.

``pip install lightning`` installs both, with distinct classes; every decision the callback makes
about the trainer's strategy, loggers and monitors must recognise either namespace's classes.
"""

from __future__ import annotations

import math

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import NAMESPACES, TINY_ENCODERS, UnifiedTinyEncoder, digits_like_data, loaders, trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.keys import CURVES_KEY, LOGGED_QUANTITIES, SECONDS_KEY, callback_key, metric_key
from rmqm_callback.lightning._checks import check_strategy

KEY = "rmqm/noise/RMQM"


def probe_tensor(n: int = 40) -> torch.Tensor:
    return digits_like_data(n, seed=7)[0]


def test_the_namespaces_really_are_distinct():
    assert L.Trainer is not pl.Trainer and L.Callback is not pl.Callback
    callback = RMQMCallback(probe_tensor())
    assert isinstance(callback, pl.Callback) and isinstance(callback, L.Callback)


class Scores(L.Callback):
    """The monitored value after each validation, in a lightning.pytorch run."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics[KEY]))


def test_a_lightning_pytorch_fit_logs_to_its_tensorboard_and_its_monitors_read_rmqm(tmp_path):
    logger = L.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    checkpoint = L.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", filename="{epoch}", save_top_k=1
    )
    stopper = L.callbacks.EarlyStopping(monitor=KEY, mode="max", patience=10)
    scores = Scores()
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    fit = trainer(
        tmp_path,
        namespace="lightning.pytorch",
        logger=logger,
        max_epochs=3,
        enable_checkpointing=True,
        callbacks=[checkpoint, stopper, callback, scores],
    )
    assert isinstance(fit, L.Trainer)
    pl.seed_everything(3, verbose=False)
    fit.fit(UnifiedTinyEncoder(lr=0.2), *loaders())

    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for quantity in (*LOGGED_QUANTITIES, SECONDS_KEY):
        assert len(events.Scalars(metric_key("rmqm", "noise", quantity))) == 3, quantity
    assert len(events.Scalars(callback_key("rmqm", "RankMe"))) == 3
    figures = events.Images(metric_key("rmqm", "noise", CURVES_KEY))
    assert [figure.step for figure in figures] == [scalar.step for scalar in events.Scalars(KEY)]
    assert [scalar.value for scalar in events.Scalars(KEY)] == pytest.approx(scores.values, rel=1e-6)
    best = max(range(3), key=lambda epoch: scores.values[epoch])
    assert checkpoint.best_model_path.endswith(f"epoch={best}.ckpt")
    assert float(checkpoint.best_model_score) == pytest.approx(scores.values[best], rel=1e-6)
    assert float(stopper.best_score) == pytest.approx(max(scores.values), rel=1e-6)


def test_under_lightning_pytorch_the_every_n_epochs_guard_raises_the_packages_error(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), every_n_epochs=2, batch_size=16)
    stopper = L.callbacks.EarlyStopping(monitor=KEY, mode="max")
    fit = trainer(tmp_path, namespace="lightning.pytorch", max_epochs=2, callbacks=[stopper, callback])
    with pytest.raises(ValueError, match=r"EarlyStopping checks 'rmqm/noise/RMQM'.*check_val_every_n_epoch=2"):
        fit.fit(UnifiedTinyEncoder(), *loaders())


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_the_strategy_check_accepts_ddp_and_refuses_sharded_strategies(namespace):
    strategies = NAMESPACES[namespace].strategies
    check_strategy(strategies.DDPStrategy())
    check_strategy(strategies.SingleDeviceStrategy(torch.device("cpu")))
    with pytest.raises(ValueError, match=r"supports single-device and DDP strategies, got FSDPStrategy"):
        check_strategy(strategies.FSDPStrategy())
    with pytest.raises(ValueError, match=r"got DeepSpeedStrategy"):  # built without __init__: no deepspeed here
        check_strategy(strategies.DeepSpeedStrategy.__new__(strategies.DeepSpeedStrategy))


def test_the_same_seeded_fit_logs_the_same_rmqm_under_either_namespace(tmp_path):
    logged = {}
    for namespace in sorted(NAMESPACES):
        callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
        fit = trainer(tmp_path / namespace, namespace=namespace, max_epochs=2, callbacks=[callback])
        pl.seed_everything(0, verbose=False)
        fit.fit(TINY_ENCODERS[namespace](), *loaders())
        logged[namespace] = float(fit.callback_metrics[KEY])
        assert logged[namespace] == pytest.approx(callback.last_results["noise"]["RMQM"], rel=1e-12)
    assert math.isfinite(logged["lightning.pytorch"])
    assert logged["lightning.pytorch"] == logged["pytorch_lightning"]
