"""RMQMCallback fails before training on a bad set-up, evaluates on the epochs it should, and resumes honestly."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from lightning_helpers import NoValidationEncoder, TinyEncoder, digits_like_data, loaders, trainer
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, SingleDeviceStrategy
from test_callback import KEY, probe_tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rmqm_callback import PGD, GaussianNoise, RMQMCallback
from rmqm_callback.lightning._checks import check_strategy


class CountsSteps(TinyEncoder):
    def training_step(self, batch, batch_idx):
        self.steps = getattr(self, "steps", 0) + 1
        return super().training_step(batch, batch_idx)


def _fails_before_training(tmp_path, module, callbacks, error, match, *data):
    with pytest.raises(error, match=match):
        trainer(tmp_path, max_epochs=1, callbacks=callbacks).fit(module, *(data or loaders()))
    assert getattr(module, "steps", 0) == 0


# ------------------------------------------------------------------ fails before the first training step


def test_two_callbacks_logging_the_same_keys_fail_before_training(tmp_path):
    first = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    second = RMQMCallback(probe_tensor(20), GaussianNoise(levels=10), batch_size=16)
    match = r"Two RMQMCallbacks log under 'rmqm/noise'.*different `prefix=`"
    _fails_before_training(tmp_path, CountsSteps(), [first, second], ValueError, match)


def test_two_callbacks_with_different_prefixes_log_both(tmp_path):
    first = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    second = RMQMCallback(probe_tensor(20), GaussianNoise(levels=10), batch_size=16, prefix="rmqm_small")
    fit = trainer(tmp_path, max_epochs=1, callbacks=[first, second])
    fit.fit(TinyEncoder(), *loaders())
    assert float(fit.callback_metrics[KEY]) == pytest.approx(first.last_results["noise"]["RMQM"], rel=1e-12)
    small = fit.callback_metrics["rmqm_small/noise/RMQM"]
    assert float(small) == pytest.approx(second.last_results["noise"]["RMQM"], rel=1e-12)
    assert first.last_results["noise"]["RMQM"] != second.last_results["noise"]["RMQM"]


class DictOutput(CountsSteps):
    def forward(self, x):
        return {"embedding": super().forward(x)}


def test_a_model_whose_output_is_not_a_representation_fails_before_training(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    match = r"The model's output gave a dict"
    _fails_before_training(tmp_path, DictOutput(), [callback], ValueError, match)


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=6), PGD(levels=4)], ids=["noise", "pgd"])
def test_a_probe_outside_the_alterations_range_fails_before_training(tmp_path, alteration):
    images, labels = digits_like_data(48, seed=1)
    standardised = DataLoader(TensorDataset((images - 0.5) / 0.2, labels), batch_size=16)
    train, _ = loaders()
    callback = RMQMCallback(16, alteration, batch_size=16)
    match = r"range clip=\(0.0, 1.0\).*inputs span \[-"
    _fails_before_training(tmp_path, CountsSteps(), [callback], ValueError, match, train, standardised)


class Uint8Images(Dataset):
    """Stores uint8 images; its DataLoader's collate_fn turns them into floats in [0, 1]."""

    def __init__(self) -> None:
        images, self.labels = digits_like_data(48, seed=1)
        self.images = (images * 255).round().to(torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def to_float(items):
    images, labels = torch.utils.data.default_collate(items)
    return images.float() / 255, labels


def test_an_int_probe_goes_through_the_loaders_collate_fn(tmp_path):
    train, _ = loaders()
    val = DataLoader(Uint8Images(), batch_size=16, collate_fn=to_float)
    callback = RMQMCallback(20, GaussianNoise(levels=6), batch_size=8)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, val)
    expected, _ = to_float([Uint8Images()[i] for i in range(20)])
    assert torch.equal(callback._probe.inputs, expected)
    assert math.isfinite(callback.last_results["noise"]["RMQM"])


def test_sharded_strategies_are_refused():
    with pytest.raises(ValueError, match=r"supports single-device and DDP strategies, got FSDPStrategy"):
        check_strategy(FSDPStrategy())
    # a DDPStrategy subclass, but sharded (built without __init__: that needs the deepspeed package)
    with pytest.raises(ValueError, match=r"got DeepSpeedStrategy"):
        check_strategy(DeepSpeedStrategy.__new__(DeepSpeedStrategy))
    check_strategy(DDPStrategy())
    check_strategy(SingleDeviceStrategy(torch.device("cpu")))


# ------------------------------------------------------------------ which epochs are evaluated


class EvaluationEpochs(Callback):
    """The epochs at whose end RMQMCallback evaluated (it sets last_results)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_end(self, trainer, pl_module):
        rmqm = next(cb for cb in trainer.callbacks if isinstance(cb, RMQMCallback))
        if rmqm._evaluated_epoch == trainer.current_epoch:
            self.epochs.append(trainer.current_epoch)


@pytest.mark.parametrize(
    "validation", [{}, {"check_val_every_n_epoch": 2}, {"check_val_every_n_epoch": None, "val_check_interval": 2}]
)
def test_an_empty_validation_set_evaluates_at_the_training_epoch_end(tmp_path, validation):
    train, _ = loaders()
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long)), batch_size=16)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    epochs = EvaluationEpochs()
    fit = trainer(tmp_path, max_epochs=2, callbacks=[callback, epochs], **validation)
    fit.fit(TinyEncoder(), train, empty)
    assert epochs.epochs == [0, 1]  # every epoch, whatever the validation schedule says
    assert KEY in fit.callback_metrics


class Stream(torch.utils.data.IterableDataset):
    """Validation data streamed, with no length (Lightning counts its batches as inf)."""

    def __iter__(self):
        return iter(zip(*digits_like_data(48, seed=1)))


@pytest.mark.parametrize("probe", ["tensor", "int"])
def test_a_streamed_validation_set_of_unknown_length_works(tmp_path, probe):
    train, _ = loaders()
    callback = RMQMCallback(probe_tensor() if probe == "tensor" else 20, GaussianNoise(levels=6), batch_size=16)
    epochs = EvaluationEpochs()
    trainer(tmp_path, max_epochs=2, callbacks=[callback, epochs]).fit(
        TinyEncoder(), train, DataLoader(Stream(), batch_size=16)
    )
    assert math.isfinite(callback.last_results["noise"]["RMQM"])
    if probe == "int":
        assert torch.equal(callback._probe.inputs, digits_like_data(48, seed=1)[0][:20])


def test_validation_every_second_epoch_is_not_doubled_by_the_fallback(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    epochs = EvaluationEpochs()
    trainer(tmp_path, max_epochs=4, check_val_every_n_epoch=2, callbacks=[callback, epochs]).fit(
        TinyEncoder(), *loaders()
    )
    assert epochs.epochs == [1, 3]


def test_fast_dev_run_evaluates_whatever_every_n_epochs(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=8, every_n_epochs=3)
    fit = trainer(tmp_path, fast_dev_run=True, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())
    assert KEY in fit.callback_metrics


# ------------------------------------------------------------------ resuming


def _first_run(tmp_path, callback) -> str:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fit = trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint, callback])
    fit.fit(TinyEncoder(), *loaders())
    return str(tmp_path / "ckpt" / "last.ckpt")


def _resume(tmp_path, callback, path) -> list[str]:
    """Resume from ``path`` with ``callback``; the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path, max_epochs=2, callbacks=[callback]).fit(TinyEncoder(), *loaders(), ckpt_path=path)
    messages = [str(warning.message) for warning in caught if "RMQMCallback" in str(warning.message)]
    return [message for message in messages if "the first evaluation" not in message]  # (the cost notice)


def test_resuming_with_another_probe_says_the_checkpoints_probe_is_used(tmp_path):
    path = _first_run(tmp_path, RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16))
    other = RMQMCallback(probe_tensor(24), GaussianNoise(levels=6), batch_size=16)
    messages = _resume(tmp_path, other, path)
    assert any("the checkpoint's probe (40 samples)" in message for message in messages)
    assert torch.equal(other._probe.inputs, probe_tensor())
    same = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    assert not _resume(tmp_path, same, path)


def test_resuming_with_another_batch_size_warns_only_where_values_depend_on_it(tmp_path):
    path = _first_run(tmp_path, RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16))
    noise = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=8, every_n_epochs=1)
    assert not _resume(tmp_path, noise, path)

    path = _first_run(tmp_path / "pgd", RMQMCallback(probe_tensor(), PGD(levels=4), batch_size=16))
    attack = RMQMCallback(probe_tensor(), PGD(levels=4), batch_size=8)
    messages = _resume(tmp_path / "pgd", attack, path)
    assert any("not comparable" in message for message in messages)


def test_the_readmes_checkpoint_filename_keeps_the_slashes_of_metric_names_out_of_paths(tmp_path):
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        monitor=KEY,
        mode="max",
        filename="epoch{epoch}-rmqm{rmqm/noise/RMQM:.3f}",
        auto_insert_metric_name=False,
    )
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint, callback]).fit(
        TinyEncoder(), *loaders()
    )
    value = callback.last_results["noise"]["RMQM"]
    assert [path.name for path in (tmp_path / "ckpt").iterdir()] == [f"epoch0-rmqm{value:.3f}.ckpt"]


class EpochValues(Callback):
    """RMQM of each epoch, read at the training epoch end (listed last: after the evaluation)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.values.append(float(trainer.callback_metrics[KEY]))


def test_monitors_listed_first_work_in_a_run_without_validation(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", filename="{epoch}")
    values = EpochValues()
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    fit = trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=[checkpoint, rmqm, values])
    fit.fit(NoValidationEncoder(lr=0.2), loaders()[0])
    assert len(values.values) == 4 and len(set(values.values)) > 1
    best_epoch = max(range(4), key=lambda epoch: values.values[epoch])
    assert checkpoint.best_model_path.endswith(f"epoch={best_epoch}.ckpt")

    stopper = EarlyStopping(monitor=KEY, mode="max", patience=2)
    frozen = NoValidationEncoder(lr=0.0, bn_momentum=0.0)  # RMQM never changes: stop after patience
    fit = trainer(tmp_path, max_epochs=20, callbacks=[stopper, RMQMCallback(probe_tensor(), GaussianNoise(levels=6))])
    fit.fit(frozen, loaders()[0])
    assert stopper.stopped_epoch == 2


class BuildsACacheOnFirstForward(CountsSteps):
    """Like models with lazily built positional tables: the first forward creates a tensor training reuses."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = None

    def forward(self, x):
        if self.cache is None:
            self.cache = torch.linspace(0.5, 1.5, 12)
        return super().forward(x) * self.cache


def test_the_train_start_check_leaves_a_first_forward_cache_usable_by_training(tmp_path):
    module = BuildsACacheOnFirstForward()
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(module, loaders()[0])
    assert module.steps == 6 and math.isfinite(callback.last_results["noise"]["RMQM"])


def test_an_int_probe_goes_through_the_collate_fn_of_a_loader_with_a_batch_sampler(tmp_path):
    train, _ = loaders()
    sampler = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(48)), 10, drop_last=False)
    val = DataLoader(Uint8Images(), batch_sampler=sampler, collate_fn=to_float)
    callback = RMQMCallback(20, GaussianNoise(levels=6), batch_size=8)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, val)
    expected, _ = to_float([Uint8Images()[i] for i in range(20)])
    assert torch.equal(callback._probe.inputs, expected)


def test_a_callback_reused_in_a_second_fit_still_falls_back_to_the_training_epoch_end(tmp_path):
    train, _ = loaders()
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long)), batch_size=16)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, *loaders()[1:])
    callback.last_results.clear()
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, empty)
    assert "noise" in callback.last_results


@pytest.mark.parametrize("probe_kind", ["dataset", "oversized-int"])
def test_resuming_with_the_same_probe_does_not_warn(tmp_path, probe_kind):
    def make():
        if probe_kind == "dataset":
            return RMQMCallback(TensorDataset(probe_tensor()), GaussianNoise(levels=6), batch_size=16)
        return RMQMCallback(500, GaussianNoise(levels=6), batch_size=16)  # more than the 48 validation samples

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the validation data has only 48 samples"
        path = _first_run(tmp_path, make())
    assert not [message for message in _resume(tmp_path, make(), path) if "probe" in message]
