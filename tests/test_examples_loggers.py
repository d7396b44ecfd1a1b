"""``train_digits.py --logger tensorboard wandb mlflow``: W&B and MLflow show the values TensorBoard shows.

One run of the script (``--quick``), as a user runs it, logging to all three: TensorBoard, W&B
(offline) and MLflow (its default SQLite store under the log dir).
"""

import pytest
from mlflow_server import QUIET_MLFLOW
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_examples import run_example
from wandb_offline import offline_environment, read_offline_run

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

CURVES = "rmqm/noise/curves"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run's TensorBoard events, its log dir, and what it printed."""
    cwd = tmp_path_factory.mktemp("train_digits_loggers")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {**offline_environment(cwd / "wandb_home"), **QUIET_MLFLOW}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        out = run_example("train_digits.py", "--quick", "--logger", "tensorboard", "wandb", "mlflow", cwd=cwd)
    events = EventAccumulator(str(cwd / "lightning_logs/nt-xent/version_0"), {"scalars": 0, "images": 0})
    events.Reload()
    return events, cwd / "lightning_logs", out


def rmqm_tags(events):
    """Every scalar key the callback logged."""
    return sorted(tag for tag in events.Tags()["scalars"] if tag.startswith("rmqm/"))


def test_wandb_shows_the_tensorboard_values_per_epoch_and_the_curves(run):
    events, log_dir, out = run
    wandb = read_offline_run(log_dir)
    assert f"Upload it:         wandb sync lightning_logs/wandb/{wandb.directory.name}" in out
    assert len(rmqm_tags(events)) == 13  # 11 per alteration, RankMe and alpha-ReQ
    for tag in rmqm_tags(events):
        rows = wandb.rows_with(tag)
        assert [row[tag] for row in rows] == pytest.approx([event.value for event in events.Scalars(tag)], rel=1e-6)
        assert [row["epoch"] for row in rows] == [0, 1]
        assert wandb.metrics[tag].step_metric == "epoch"
    images = wandb.rows_with(CURVES)
    assert [row["epoch"] for row in images] == [0, 1]
    for row, figure in zip(images, events.Images(CURVES)):
        with Image.open(wandb.file(row[CURVES]["path"])) as png:
            assert png.size == (figure.width, figure.height)


def test_mlflow_shows_the_tensorboard_values_and_the_curves(run):
    from mlflow import MlflowClient

    events, log_dir, out = run
    uri = f"sqlite:///{log_dir.resolve() / 'mlflow.db'}"
    assert f"Open MLflow:       mlflow ui --backend-store-uri {uri}" in out
    client = MlflowClient(uri)
    (mlflow,) = client.search_runs([client.get_experiment_by_name("rmqm-digits").experiment_id])
    assert mlflow.info.run_name == "nt-xent"
    for tag in rmqm_tags(events):
        history = client.get_metric_history(mlflow.info.run_id, tag)
        assert [point.value for point in history] == pytest.approx([e.value for e in events.Scalars(tag)], rel=1e-6)
        assert [point.step for point in history] == [event.step for event in events.Scalars(tag)]
    artifacts = [artifact.path for artifact in client.list_artifacts(mlflow.info.run_id, CURVES)]
    assert artifacts == [f"{CURVES}/epoch_0000.png", f"{CURVES}/epoch_0001.png"]
    assert (log_dir / "mlflow-artifacts" / mlflow.info.run_id / "artifacts" / artifacts[0]).is_file()
    assert len(artifacts) == len(events.Images(CURVES))
