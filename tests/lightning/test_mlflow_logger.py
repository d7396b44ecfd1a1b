"""RMQMCallback with a real ``MLFlowLogger`` and a real tracking server, under both Lightning namespaces.

One ``mlflow server`` for the module (127.0.0.1, SQLite store, artifacts served from a local folder);
the runs are read back with ``MlflowClient``. This process may open local sockets only.
"""

from __future__ import annotations

import pytest
import torch
from lightning_helpers import NAMESPACES, TINY_ENCODERS, TinyEncoder, digits_like_data, loaders, trainer
from mlflow_server import QUIET_MLFLOW, mlflow_server
from network_guard import local_sockets_only
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.keys import CURVES_KEY, metric_key

pytest.importorskip("mlflow")

CURVES = metric_key("rmqm", "noise", CURVES_KEY)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in QUIET_MLFLOW.items():
            monkeypatch.setenv(name, value)
        with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
            yield uri


@pytest.fixture
def client(server, monkeypatch):
    from mlflow import MlflowClient

    with local_sockets_only(monkeypatch) as refused:
        yield MlflowClient(server)
    assert refused == []


def probe_tensor(n: int = 40) -> torch.Tensor:
    return digits_like_data(n, seed=7)[0]


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_an_mlflow_run_has_the_tensorboard_values_and_a_curves_artifact_per_epoch(tmp_path, server, client, namespace):
    loggers = NAMESPACES[namespace].loggers
    tensorboard = loggers.TensorBoardLogger(str(tmp_path), name="tb")
    mlflow = loggers.MLFlowLogger(experiment_name=namespace, tracking_uri=server)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    fit = trainer(tmp_path, namespace=namespace, logger=[tensorboard, mlflow], max_epochs=2, callbacks=[callback])
    fit.fit(TINY_ENCODERS[namespace](), *loaders())
    events = EventAccumulator(tensorboard.log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()

    run = client.get_run(mlflow.run_id)
    assert run.info.status == "FINISHED"
    assert callback.logged_keys <= set(run.data.metrics)  # the names as they are, '/' and all
    for key in callback.logged_keys:
        history = client.get_metric_history(mlflow.run_id, key)
        # the values TensorBoard got, at the same step: Lightning's, not the epoch
        assert [point.value for point in history] == pytest.approx([e.value for e in events.Scalars(key)], rel=1e-6)
        assert [point.step for point in history] == [event.step for event in events.Scalars(key)]
    # 6 batches an epoch: Lightning's step when validation ends; its `epoch` metric at the same steps, twice
    assert [point.step for point in client.get_metric_history(mlflow.run_id, "rmqm/noise/RMQM")] == [5, 11]
    epochs = [(point.step, point.value) for point in client.get_metric_history(mlflow.run_id, "epoch")]
    assert epochs == [(5, 0), (5, 0), (11, 1), (11, 1)]

    artifacts = [artifact.path for artifact in client.list_artifacts(mlflow.run_id, CURVES)]
    assert artifacts == [f"{CURVES}/epoch_0000.png", f"{CURVES}/epoch_0001.png"]
    for path, figure in zip(artifacts, events.Images(CURVES)):
        with Image.open(client.download_artifacts(mlflow.run_id, path, str(tmp_path))) as png:
            assert png.format == "PNG"
            assert png.size == (figure.width, figure.height)


def test_log_curves_false_logs_no_artifact(tmp_path, server, client):
    from pytorch_lightning.loggers import MLFlowLogger

    mlflow = MLFlowLogger(experiment_name="no-curves", tracking_uri=server)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16, log_curves=False)
    trainer(tmp_path, logger=mlflow, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    assert client.list_artifacts(mlflow.run_id) == []
    assert len(client.get_metric_history(mlflow.run_id, "rmqm/noise/RMQM")) == 1
