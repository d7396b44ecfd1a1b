"""RMQMCallback with a real offline ``WandbLogger``, under both Lightning namespaces, read back from the run's files.

No network: the run is offline (``WANDB_MODE=offline``, every W&B folder under ``tmp_path``) and
this process may open local sockets only.
"""

from __future__ import annotations

import pytest
import torch
from lightning_helpers import NAMESPACES, TINY_ENCODERS, digits_like_data, loaders, trainer
from network_guard import local_sockets_only
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb_offline import offline_environment, read_offline_run

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.keys import CURVES_KEY, metric_key

pytest.importorskip("wandb")

CURVES = metric_key("rmqm", "noise", CURVES_KEY)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An offline W&B under ``tmp_path / "wandb"``, no network, and the run finished after the test."""
    import wandb

    for name, value in offline_environment(tmp_path / "wandb").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with local_sockets_only(monkeypatch) as refused:
        yield tmp_path / "wandb"
        wandb.finish()
    assert refused == []


def probe_tensor(n: int = 40) -> torch.Tensor:
    return digits_like_data(n, seed=7)[0]


def fit_with(tmp_path, namespace, *loggers, epochs=2, **callback_kwargs):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16, **callback_kwargs)
    fit = trainer(tmp_path, namespace=namespace, logger=list(loggers), max_epochs=epochs, callbacks=[callback])
    fit.fit(TINY_ENCODERS[namespace](), *loaders())
    return callback


def tensorboard_run(logger) -> EventAccumulator:
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_a_wandb_run_has_the_tensorboard_values_per_epoch_and_the_curves_images(tmp_path, offline, namespace):
    loggers = NAMESPACES[namespace].loggers
    tensorboard = loggers.TensorBoardLogger(str(tmp_path), name="tb")
    callback = fit_with(tmp_path, namespace, tensorboard, loggers.WandbLogger(save_dir=str(offline), project="rmqm"))
    run = read_offline_run(offline)
    events = tensorboard_run(tensorboard)

    assert sorted(callback.logged_keys) == sorted(key for key in events.Tags()["scalars"] if key.startswith("rmqm/"))
    for key in callback.logged_keys:
        rows = run.rows_with(key)
        # the values TensorBoard got, at the same Lightning step, each with its epoch
        assert [row[key] for row in rows] == pytest.approx([event.value for event in events.Scalars(key)], rel=1e-6)
        assert [row["trainer/global_step"] for row in rows] == [event.step for event in events.Scalars(key)]
        assert [row["epoch"] for row in rows] == [0, 1]
        # charted against the epoch, not WandbLogger's trainer/global_step: defined before its first value
        assert run.metrics[key].step_metric == "epoch", key
        assert run.defined_after_rows[key] <= run.first_row_with(key)
    assert run.metrics["*"].step_metric == "trainer/global_step"  # Lightning's default for every other key

    images = run.rows_with(CURVES)
    assert run.metrics[CURVES].step_metric == "epoch"
    assert run.defined_after_rows[CURVES] <= run.first_row_with(CURVES)
    assert [row["epoch"] for row in images] == [0, 1]
    assert [row["trainer/global_step"] for row in images] == [event.step for event in events.Images(CURVES)]
    for row, figure in zip(images, events.Images(CURVES)):
        assert row[CURVES]["_type"] == "image-file"
        with Image.open(run.file(row[CURVES]["path"])) as png:
            assert png.size == (figure.width, figure.height) == (row[CURVES]["width"], row[CURVES]["height"])


def test_a_wandb_logger_prefix_is_followed_by_the_metric_definitions_and_the_images(tmp_path, offline):
    from pytorch_lightning.loggers import WandbLogger

    fit_with(tmp_path, "pytorch_lightning", WandbLogger(save_dir=str(offline), prefix="run1"), epochs=1)
    run = read_offline_run(offline)
    assert run.metrics["run1-rmqm/noise/RMQM"].step_metric == "run1-epoch"
    assert [row["run1-epoch"] for row in run.rows_with("run1-rmqm/noise/RMQM")] == [0]
    assert [row["run1-epoch"] for row in run.rows_with(f"run1-{CURVES}")] == [0]


def test_log_curves_false_sends_no_image_but_still_defines_the_metrics(tmp_path, offline):
    from pytorch_lightning.loggers import WandbLogger

    fit_with(tmp_path, "pytorch_lightning", WandbLogger(save_dir=str(offline)), epochs=1, log_curves=False)
    run = read_offline_run(offline)
    assert run.rows_with(CURVES) == []
    assert run.metrics["rmqm/noise/RMQM"].step_metric == "epoch"
    assert len(run.rows_with("rmqm/noise/RMQM")) == 1
