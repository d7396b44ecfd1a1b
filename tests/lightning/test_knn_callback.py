"""The k-NN accuracy of a labelled probe, logged by the callback from the clean pass it already runs."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import TinyEncoder, digits_like_data, loaders, trainer
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from reference_knn import reference_knn_accuracy
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from test_callback import probe_tensor
from test_collapse_signals import _compare_tag_names
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import PGD, GaussianNoise, RMQMCallback, score
from rmqm_callback.functional import knn_accuracy

KNN = "rmqm/knn_accuracy"


class CountsSteps(TinyEncoder):
    def training_step(self, batch, batch_idx):
        self.steps = getattr(self, "steps", 0) + 1
        return super().training_step(batch, batch_idx)


def labelled_probe(n: int = 40, dtype: torch.dtype = torch.int64) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, labels = digits_like_data(n, seed=7)
    return inputs, labels.to(dtype)


def clean_representations(module: pl.LightningModule, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The level-0 representations as the callback computes them: eval mode, block by block."""
    module.eval()
    with torch.no_grad():
        return torch.cat([module(block) for block in inputs.split(batch_size)])


def _fit(tmp_path, callback, module=None, data=None, lr=0.05, **settings):
    pl.seed_everything(0, verbose=False)
    module = TinyEncoder(lr=lr) if module is None else module
    fit = trainer(tmp_path, callbacks=[*settings.pop("extra", []), callback], **{"max_epochs": 1, **settings})
    fit.fit(module, *(data or loaders()))
    return fit, module


def _fails_before_training(tmp_path, callback, match, data=None, extra=(), **settings):
    module = CountsSteps()
    with pytest.raises(ValueError, match=match):
        _fit(tmp_path, callback, module=module, data=data, extra=list(extra), **settings)
    assert getattr(module, "steps", 0) == 0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
def test_a_labelled_probe_logs_the_knn_accuracy_of_its_clean_representations(tmp_path, dtype):
    inputs, labels = labelled_probe(37, dtype)
    callback = RMQMCallback((inputs, labels), [PGD(levels=3), GaussianNoise(levels=4)], batch_size=8, knn=3)
    fit, module = _fit(tmp_path, callback)
    clean = clean_representations(module, inputs, 8)  # PGD is the first alteration: its level 0
    logged = float(fit.callback_metrics[KNN])
    assert logged == knn_accuracy(clean, labels, k=3).item()
    assert logged == reference_knn_accuracy(clean.double().numpy(), labels.long().numpy(), 3)
    assert fit.callback_metrics[KNN].dtype == torch.float64
    assert 0.0 < logged < 1.0  # a real value, not a degenerate one


def test_an_int_probe_of_labelled_validation_data_logs_the_default_knn_accuracy(tmp_path):
    callback = RMQMCallback(20, GaussianNoise(levels=4), batch_size=8)
    fit, module = _fit(tmp_path, callback)
    inputs, labels = digits_like_data(48, seed=1)  # the validation data of loaders()
    clean = clean_representations(module, inputs[:20], 8)
    assert float(fit.callback_metrics[KNN]) == knn_accuracy(clean, labels[:20], k=1).item()
    assert score(module, (inputs[:20], labels[:20]), GaussianNoise(levels=4), batch_size=8)["knn_accuracy"] == (
        fit.callback_metrics[KNN]
    )


def test_knn_false_and_a_probe_without_labels_log_no_knn_accuracy(tmp_path):
    inputs, labels = labelled_probe()
    floats = (inputs, labels.float())  # regression-like targets: not class labels
    for probe, knn in ((inputs, True), ((inputs, labels), False), (floats, True)):
        fit, _ = _fit(tmp_path, RMQMCallback(probe, GaussianNoise(levels=4), batch_size=16, knn=knn))
        assert "rmqm/noise/RMQM" in fit.callback_metrics and KNN not in fit.callback_metrics


@pytest.mark.parametrize(
    "monitor", [EarlyStopping(KNN, mode="max"), ModelCheckpoint(monitor=KNN, mode="max")], ids=["early", "checkpoint"]
)
def test_a_monitor_of_the_knn_accuracy_of_a_probe_without_labels_is_refused_before_training(tmp_path, monitor):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    match = rf"{type(monitor).__name__}: a monitor watches '{KNN}', .* the probe needs labels for it and it has no"
    _fails_before_training(tmp_path, callback, match, extra=[monitor], enable_checkpointing=True)


def test_the_refusal_also_follows_an_int_probe_of_unlabelled_data_and_names_float_labels(tmp_path):
    train, _ = loaders()
    images, labels = digits_like_data(48, seed=1)
    unlabelled = DataLoader(TensorDataset(images), batch_size=16)
    callback = RMQMCallback(20, GaussianNoise(levels=4), batch_size=16)
    match = r"the probe needs labels for it and it has no labels"
    monitor = [EarlyStopping(KNN)]
    _fails_before_training(tmp_path, callback, match, data=(train, unlabelled), extra=monitor)
    floats = RMQMCallback((images, labels.double()), GaussianNoise(levels=4), batch_size=16)
    _fails_before_training(tmp_path, floats, r"its labels are torch.float64 .* not class labels", extra=monitor)
    off = RMQMCallback((images, labels), GaussianNoise(levels=4), batch_size=16, knn=False)
    _fails_before_training(tmp_path, off, r"RMQMCallback\(knn=False\) computes no k-NN accuracy", extra=monitor)


class History(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer, pl_module):
        self.values.append(float(trainer.callback_metrics[KNN]))


def test_model_checkpoint_on_the_knn_accuracy_keeps_its_best_epoch_and_records_k(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=KNN, mode="max", save_top_k=1)
    callback, history = RMQMCallback(labelled_probe(), GaussianNoise(levels=4), batch_size=16, knn=2), History()
    _fit(tmp_path, callback, extra=[checkpoint, history], max_epochs=3, enable_checkpointing=True, lr=0.5)
    assert len(history.values) == 3
    assert float(checkpoint.best_model_score) == max(history.values)
    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    assert saved["epoch"] == history.values.index(max(history.values))
    assert saved["callbacks"][callback.state_key]["recorded"]["knn"] == 2


def test_a_knn_that_cannot_be_computed_is_refused_before_training(tmp_path):
    inputs, labels = labelled_probe(8)
    match = r"RMQMCallback\(knn=3\) computes the k-NN accuracy of a labelled probe, .*: it has no labels"
    _fails_before_training(tmp_path, RMQMCallback(inputs, GaussianNoise(levels=4), knn=3), match)
    match = r"RMQMCallback\(knn=8\): leave-one-out k-NN with k = 8 needs at least 9 probes, but the probe .* has 8"
    _fails_before_training(tmp_path, RMQMCallback((inputs, labels), GaussianNoise(levels=4), knn=8), match)


@pytest.mark.parametrize(
    ("knn", "error", "match"),
    [(0, ValueError, r"`knn` must be True, False or an int k >= 1, got 0"), (1.5, TypeError, r"`knn` must be a bool")],
)
def test_bad_knn_arguments_are_refused_at_construction(knn, error, match):
    with pytest.raises(error, match=match):
        RMQMCallback(probe_tensor(4), knn=knn)


def test_two_callbacks_of_one_prefix_logging_the_knn_accuracy_are_refused(tmp_path):
    first = RMQMCallback(labelled_probe(), GaussianNoise(levels=4), batch_size=16)
    second = RMQMCallback(labelled_probe(), PGD(levels=3), batch_size=16, spectral=False)
    match = r"Two RMQMCallbacks log under 'rmqm/knn_accuracy'.*knn=False on the others"
    _fails_before_training(tmp_path, first, match, extra=[second])


def test_tensorboard_shows_the_knn_accuracy_after_the_collapse_signals_and_in_the_headline(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    _fit(tmp_path, RMQMCallback(labelled_probe(), GaussianNoise(levels=4), batch_size=16), logger=logger)
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    group = [tag for tag in events.Tags()["scalars"] if tag.startswith("rmqm/")]
    charts = sorted(group, key=functools.cmp_to_key(_compare_tag_names))
    assert charts[:4] == ["rmqm/RankMe", "rmqm/alpha_ReQ", KNN, "rmqm/noise/D"]
    (config,) = events.Tensors("custom_scalars__config__")
    headline = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0]).category[0].chart
    assert [chart.title for chart in headline][:2] == ["RMQM", "k-NN accuracy"]
    assert list(headline[1].multiline.tag) == [r"^rmqm/knn_accuracy$"]
