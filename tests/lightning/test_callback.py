"""RMQMCallback in real Trainer fits: logging, TensorBoard, checkpointing, early stopping, resume."""

from __future__ import annotations

import io
import math
import random
import re
import sys

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import NoValidationEncoder, TinyEncoder, digits_like_data, loaders, trainer
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rmqm_callback import PGD, GaussianNoise, InputAlteration, RMQMCallback, score
from rmqm_callback.alterations import base as alteration_base
from rmqm_callback.keys import CURVES_KEY, LOGGED_QUANTITIES, SECONDS_KEY, metric_key
from rmqm_callback.lightning._progress import progress_bar

KEY = "rmqm/noise/RMQM"


def probe_tensor(n: int = 40) -> torch.Tensor:
    return digits_like_data(n, seed=7)[0]


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


class History(Callback):
    """Records the monitored value after each validation (listed last, so it runs after everyone)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics[KEY]))


def test_tensorboard_scalars_and_curve_figure_one_per_evaluated_epoch(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    fit = trainer(tmp_path, logger=logger, max_epochs=3, num_sanity_val_steps=2, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())

    events = read_events(logger.log_dir)
    scalars = events.Tags()["scalars"]
    for quantity in (*LOGGED_QUANTITIES, SECONDS_KEY):
        key = metric_key("rmqm", "noise", quantity)
        assert key in scalars
        assert len(events.Scalars(key)) == 3  # one per epoch; none for the sanity check
    last = events.Scalars(KEY)[-1].value
    assert last == pytest.approx(callback.last_results["noise"]["RMQM"], rel=1e-6)
    images = events.Tags()["images"]
    assert metric_key("rmqm", "noise", CURVES_KEY) in images
    assert len(events.Images(metric_key("rmqm", "noise", CURVES_KEY))) == 3


def test_every_n_epochs(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), every_n_epochs=2, batch_size=16)
    trainer(tmp_path, logger=logger, max_epochs=5, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    events = read_events(logger.log_dir)
    epochs = {event.step: event.value for event in events.Scalars("epoch")}
    assert [epochs[event.step] for event in events.Scalars(KEY)] == [1, 3]  # of epochs 0..4


def test_logged_values_equal_score_of_the_weights_evaluated(tmp_path):
    callback = RMQMCallback(probe_tensor(), [GaussianNoise(levels=10), PGD(levels=4)], batch_size=16)
    module = TinyEncoder()
    trainer(tmp_path, max_epochs=2, callbacks=[callback]).fit(module, *loaders())
    # the last evaluation ran at the end of the last epoch: on the final weights
    for name, alteration in (("noise", GaussianNoise(levels=10)), ("pgd", PGD(levels=4))):
        offline = score(module, probe_tensor(), alteration, batch_size=16)
        for quantity in ("RMQM", "D", "D_RC", "P_RC", "D_se"):
            assert callback.last_results[name][quantity] == pytest.approx(float(offline[quantity]), rel=1e-12)


def test_no_validation_run_evaluates_at_train_epoch_end(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    train, _ = loaders()
    trainer(tmp_path, logger=logger, max_epochs=2, callbacks=[callback]).fit(NoValidationEncoder(), train)
    assert len(read_events(logger.log_dir).Scalars(KEY)) == 2
    assert "noise" in callback.last_results


def test_int_probe_without_validation_takes_first_training_samples(tmp_path):
    callback = RMQMCallback(10, GaussianNoise(levels=6), batch_size=4)
    train, _ = loaders()
    module = NoValidationEncoder()
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(module, train)
    assert torch.equal(callback._probe.inputs, train.dataset.tensors[0][:10])
    assert torch.equal(callback._probe.labels, train.dataset.tensors[1][:10])


class OverwriteValidationData(Callback):
    """Changes the validation images in place once training has started."""

    def on_train_epoch_start(self, trainer, pl_module):
        trainer.val_dataloaders.dataset.tensors[0].mul_(0.5)


def test_int_probe_is_taken_at_the_start_of_training_and_kept(tmp_path):
    train, val = loaders()
    original = val.dataset.tensors[0][:12].clone()
    callback = RMQMCallback(12, GaussianNoise(levels=6), batch_size=4)
    fit = trainer(tmp_path, max_epochs=2, callbacks=[callback, OverwriteValidationData()])
    fit.fit(TinyEncoder(), train, val)
    assert torch.equal(callback._probe.inputs, original)
    assert not torch.equal(val.dataset.tensors[0][:12], original)


def test_int_probe_with_late_first_validation_still_uses_validation_data(tmp_path):
    train, val = loaders()
    callback = RMQMCallback(12, GaussianNoise(levels=6), batch_size=4)
    trainer(tmp_path, max_epochs=2, check_val_every_n_epoch=2, callbacks=[callback]).fit(TinyEncoder(), train, val)
    assert torch.equal(callback._probe.inputs, val.dataset.tensors[0][:12])


class ValidationStream(torch.utils.data.IterableDataset):
    """Validation data as an iterable dataset that also has a length."""

    def __init__(self):
        self.images, self.labels = digits_like_data(48, seed=1)

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        return iter(zip(self.images, self.labels))


def test_int_probe_from_an_iterable_validation_set(tmp_path):
    train, _ = loaders()
    stream = ValidationStream()
    callback = RMQMCallback(10, GaussianNoise(levels=6), batch_size=4)
    val = torch.utils.data.DataLoader(stream, batch_size=16)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, val)
    assert torch.equal(callback._probe.inputs, stream.images[:10])


def test_fast_dev_run_evaluates_one_block(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=8)
    fit = trainer(tmp_path, fast_dev_run=True, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())
    assert KEY in fit.callback_metrics
    assert callback.last_results["noise"]["num_probes"] == 8


@pytest.mark.parametrize("on_train_epoch_end", [False, True])
def test_model_checkpoint_listed_first_keeps_the_best_rmqm(tmp_path, on_train_epoch_end):
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        monitor=KEY,
        mode="max",
        save_top_k=1,
        save_on_train_epoch_end=on_train_epoch_end,
        filename="{epoch}",
    )
    history = History()
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    fit = trainer(tmp_path, max_epochs=5, enable_checkpointing=True, callbacks=[checkpoint, rmqm, history])
    pl.seed_everything(1, verbose=False)
    fit.fit(TinyEncoder(lr=0.2), *loaders())
    assert len(history.values) == 5
    assert len(set(history.values)) > 1
    best_epoch = max(range(5), key=lambda epoch: history.values[epoch])
    assert float(checkpoint.best_model_score) == pytest.approx(max(history.values), rel=1e-6)
    assert checkpoint.best_model_path.endswith(f"epoch={best_epoch}.ckpt")


@pytest.mark.parametrize("on_train_epoch_end", [False, True])
def test_early_stopping_listed_first_stops_when_rmqm_stops_improving(tmp_path, on_train_epoch_end):
    stopper = EarlyStopping(monitor=KEY, mode="max", patience=2, check_on_train_epoch_end=on_train_epoch_end)
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    # lr=0 and frozen BatchNorm statistics: the weights and so RMQM never change
    fit = trainer(tmp_path, max_epochs=20, callbacks=[stopper, rmqm])
    fit.fit(TinyEncoder(lr=0.0, bn_momentum=0.0), *loaders())
    assert stopper.stopped_epoch == 2
    assert fit.current_epoch == 3


def test_early_stopping_follows_the_logged_history(tmp_path):
    stopper = EarlyStopping(monitor=KEY, mode="max", patience=1)
    history = History()
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=10), batch_size=16)
    fit = trainer(tmp_path, max_epochs=12, callbacks=[stopper, rmqm, history])
    pl.seed_everything(2, verbose=False)
    fit.fit(TinyEncoder(lr=0.3), *loaders())
    assert all(math.isfinite(value) for value in history.values)
    best, wait, expected_stop = -math.inf, 0, None
    for epoch, value in enumerate(history.values):
        if value > best:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= 1:
                expected_stop = epoch
                break
    assert stopper.stopped_epoch == (expected_stop or 0)
    assert len(history.values) == (expected_stop + 1 if expected_stop is not None else 12)


@pytest.mark.parametrize(
    ("monitor_callback", "match"),
    [
        (lambda: EarlyStopping(monitor=KEY, mode="max"), r"EarlyStopping checks .*check_val_every_n_epoch=2"),
        (
            lambda: EarlyStopping(monitor=KEY, mode="max", strict=False),
            r"EarlyStopping checks .rmqm/noise/RMQM. .*check_val_every_n_epoch=2",
        ),
        (lambda: ModelCheckpoint(monitor=KEY, mode="max"), r"ModelCheckpoint\(every_n_epochs=2\)"),
    ],
)
def test_every_n_epochs_with_an_every_epoch_monitor_fails_early_with_a_fix(tmp_path, monitor_callback, match):
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), every_n_epochs=2, batch_size=16)
    fit = trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[monitor_callback(), rmqm])
    with pytest.raises(ValueError, match=match):
        fit.fit(TinyEncoder(), *loaders())


class EvaluatedEpochs(Callback):
    """Records (epoch, RMQM) for each epoch at whose validation end RMQM was freshly logged."""

    def __init__(self) -> None:
        self.records: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, pl_module):
        rmqm = next(cb for cb in trainer.callbacks if isinstance(cb, RMQMCallback))
        if rmqm._due(trainer) and not trainer.sanity_checking:
            self.records.append((trainer.current_epoch, float(trainer.callback_metrics[KEY])))


@pytest.mark.parametrize("setting", ["check_val_every_n_epoch", "both_every_2", "matching_monitors"])
def test_every_n_epochs_works_with_matching_monitors(tmp_path, setting):
    if setting in ("check_val_every_n_epoch", "both_every_2"):
        # validation every 2 epochs: with every_n_epochs 1 or 2, every validation has a fresh RMQM
        every_n_epochs = 1 if setting == "check_val_every_n_epoch" else 2
        rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), every_n_epochs=every_n_epochs, batch_size=16)
        stopper = EarlyStopping(monitor=KEY, mode="max", patience=10)
        checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", filename="{epoch}")
        extra = {"check_val_every_n_epoch": 2}
    else:
        rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), every_n_epochs=2, batch_size=16)
        stopper = EarlyStopping(monitor="train_loss", mode="min", patience=10)  # not on an RMQM key
        checkpoint = ModelCheckpoint(
            dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", filename="{epoch}", every_n_epochs=2
        )
        extra = {}
    evaluated = EvaluatedEpochs()
    callbacks = [checkpoint, stopper, rmqm, evaluated]
    fit = trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=callbacks, **extra)
    pl.seed_everything(3, verbose=False)
    fit.fit(TinyEncoder(lr=0.2), *loaders())
    assert [epoch for epoch, _ in evaluated.records] == [1, 3]
    best_epoch, best_value = max(evaluated.records, key=lambda record: record[1])
    assert checkpoint.best_model_path.endswith(f"epoch={best_epoch}.ckpt")
    assert float(checkpoint.best_model_score) == pytest.approx(best_value, rel=1e-6)
    if stopper.monitor == KEY:
        assert float(stopper.best_score) == pytest.approx(best_value, rel=1e-6)


class DivergesAfterFirstEpoch(TinyEncoder):
    """Its representation turns NaN from epoch 1 on, as if the weights had diverged."""

    def forward(self, x):
        representation = super().forward(x)
        if self.current_epoch >= 1 and not self.training:
            representation = representation * math.nan
        return representation


def test_non_finite_representations_log_nan_and_early_stopping_stops(tmp_path):
    stopper = EarlyStopping(monitor=KEY, mode="max", patience=5, check_finite=True)
    rmqm = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    fit = trainer(tmp_path, max_epochs=5, callbacks=[stopper, rmqm])
    with pytest.warns(UserWarning, match=r"non-finite \(NaN/inf\) representations for 40 probes"):
        fit.fit(DivergesAfterFirstEpoch(), *loaders())
    assert math.isnan(rmqm.last_results["noise"]["RMQM"])
    assert stopper.stopped_epoch == 1  # stopped by check_finite, not by the callback raising


def test_resume_restores_probe_settings_and_value(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = RMQMCallback(20, GaussianNoise(levels=8), batch_size=8)
    module = TinyEncoder()
    train, val = loaders()
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint, first]).fit(module, train, val)
    before = first.last_results["noise"]["RMQM"]
    probe_before = first._probe.inputs.clone()

    # resume with *different* validation data: the probe must come from the checkpoint
    second = RMQMCallback(20, GaussianNoise(levels=8), batch_size=8)
    other_val = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*digits_like_data(48, seed=99)), batch_size=16
    )
    restored = TinyEncoder()
    resumed = trainer(tmp_path, max_epochs=2, callbacks=[second])
    resumed.fit(restored, train, other_val, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert torch.equal(second._probe.inputs, probe_before)
    assert second.last_results["noise"]["RMQM"] == before
    offline = score(restored, second._probe.inputs, GaussianNoise(levels=8), batch_size=8)
    assert float(offline["RMQM"]) == pytest.approx(before, rel=1e-12)


def test_two_callbacks_live_in_one_trainer_and_checkpoint(tmp_path):
    noise = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    # one prefix, so one of them logs rmqm/RankMe and rmqm/alpha_ReQ
    attack = RMQMCallback(probe_tensor(), PGD(levels=4, radius=0.1), batch_size=16, spectral=False)
    assert noise.state_key != attack.state_key
    fit = trainer(tmp_path, max_epochs=1, callbacks=[noise, attack])
    fit.fit(TinyEncoder(), *loaders())
    path = tmp_path / "both.ckpt"
    fit.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["callbacks"]
    assert noise.state_key in saved and attack.state_key in saved
    assert {"rmqm/noise/RMQM", "rmqm/pgd/RMQM"} <= set(fit.callback_metrics)


def test_named_alterations_and_reference_convention_keys(tmp_path):
    callback = RMQMCallback(
        probe_tensor(),
        {"weak": GaussianNoise(levels=6, max_std=0.2), "strong": GaussianNoise(levels=6)},
        batch_size=16,
        convention="reference",
        prefix="manifold",
    )
    fit = trainer(tmp_path, max_epochs=1, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())
    for name in ("weak", "strong"):
        for quantity in ("RMQM", "D", "D_RC", "P_RC", "D_prev", "se/D_prev", "left_out/P_RC", "seconds"):
            assert f"manifold/{name}/{quantity}" in fit.callback_metrics
    assert {"manifold/RankMe", "manifold/alpha_ReQ"} <= set(fit.callback_metrics)


def test_without_matplotlib_scalars_still_logged_and_no_figure(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    with pytest.warns(UserWarning, match=r"not installed.*rmqm_callback\[plot\]") as warned:
        trainer(tmp_path, logger=logger, max_epochs=2, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    assert sum("matplotlib" in str(warning.message) for warning in warned) == 1  # once, not every epoch
    events = read_events(logger.log_dir)
    assert KEY in events.Tags()["scalars"]
    assert events.Tags()["images"] == []


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_can_be_switched_off(tmp_path, capfd, progress):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=8, progress=progress)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    assert ("RMQM noise" in capfd.readouterr().err) == progress


def test_progress_in_a_redirected_log_is_one_plain_line_per_evaluation(tmp_path, capfd):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=8, progress=True)
    trainer(tmp_path, max_epochs=2, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    err = capfd.readouterr().err  # pytest's capture is not a terminal
    lines = [line for line in err.splitlines() if "RMQM noise" in line]
    assert len(lines) == 2 and all(re.fullmatch(r"RMQM noise: \d+ blocks in [\d.]+ s", line) for line in lines), lines
    assert "\r" not in err and "\x1b" not in err and "0it" not in err


def test_progress_on_a_terminal_is_a_bar():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    hook = progress_bar("RMQM noise", screen)
    hook(1, 3), hook(3, 3)
    assert "RMQM noise" in screen.getvalue() and "\r" in screen.getvalue()


@pytest.mark.parametrize("precision", ["bf16-mixed", "64-true"])
def test_trainer_precision_is_followed(tmp_path, precision):
    callback = RMQMCallback(probe_tensor(), [GaussianNoise(levels=6), PGD(levels=3)], batch_size=16)
    fit = trainer(tmp_path, max_epochs=1, precision=precision, callbacks=[callback])
    fit.fit(TinyEncoder(), *loaders())
    assert math.isfinite(callback.last_results["noise"]["RMQM"])
    assert math.isfinite(callback.last_results["pgd"]["RMQM"])


class Snapshot(Callback):
    """Listed after RMQMCallback: checks that its evaluation left the module exactly as it was."""

    def __init__(self, hook: str) -> None:
        self.hook = hook
        self.checked = 0

    def _take(self, pl_module):
        return {
            "params": [p.detach().clone() for p in pl_module.parameters()],
            "grads": [None if p.grad is None else p.grad.clone() for p in pl_module.parameters()],
            "buffers": [b.clone() for b in pl_module.buffers()],
            "modes": [m.training for m in pl_module.modules()],
            "rng": torch.get_rng_state(),
        }

    def on_validation_epoch_start(self, trainer, pl_module):
        self.before = self._take(pl_module)

    def on_train_epoch_start(self, trainer, pl_module):
        self.before = None

    def _compare(self, pl_module):
        after = self._take(pl_module)
        for key, values in self.before.items():
            if key == "rng":
                assert torch.equal(values, after[key])
                continue
            for old, new in zip(values, after[key]):
                if torch.is_tensor(old):
                    assert torch.equal(old, new), key
                else:
                    assert old == new, key  # a mode flag, or a .grad that stayed None
        self.checked += 1

    def on_validation_epoch_end(self, trainer, pl_module):
        if self.hook == "validation":
            self._compare(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.hook == "train":
            self._compare(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.hook == "train":
            self.before = self._take(pl_module)


class PythonRandomProbe(torch.utils.data.Dataset):
    """A probe Dataset whose items draw from Python's and NumPy's global random streams (an augmentation library)."""

    def __len__(self):
        return 20

    def __getitem__(self, index):
        jitter = random.random() + float(np.random.rand())  # noqa: NPY002 (the global stream, on purpose)
        return probe_tensor(20)[index] + 0.0 * jitter


class ImpureNoise(InputAlteration):
    """Noise from torch's global stream (pure = False): the callback must leave that stream as it was."""

    def alter(self, inputs, indices, level):
        return inputs if level == 0 else (inputs + 0.01 * level * torch.randn_like(inputs)).clamp(0, 1)


class AugmentedProbe(torch.utils.data.Dataset):
    """A probe Dataset whose items draw from the global RNG (a random-transform augmentation)."""

    def __len__(self):
        return 20

    def __getitem__(self, index):
        return (probe_tensor(20)[index] + 0.01 * torch.rand(1, 8, 8)).clamp(0, 1)


def make_probe(kind):
    if kind == "tensor":
        return probe_tensor()
    if kind == "loader":
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(probe_tensor()), batch_size=16)
    if kind == "augmented-dataset":
        return AugmentedProbe()
    if kind == "python-random-dataset":
        return PythonRandomProbe()
    return 20  # the first 20 validation (or training) samples


def _train(tmp_path, module_class, with_callback, alteration, hook, probe_kind="tensor"):
    pl.seed_everything(0, verbose=False)
    module = module_class()
    train, val = loaders()
    callbacks = []
    snapshot = Snapshot(hook)
    if with_callback:
        callbacks = [RMQMCallback(make_probe(probe_kind), alteration, batch_size=16), snapshot]
    fit = trainer(tmp_path, max_epochs=3, callbacks=callbacks)
    fit.fit(module, train, val if hook == "validation" else None)
    if with_callback:  # the int probe takes labelled samples: its run computes the k-NN accuracy too
        assert ("rmqm/knn_accuracy" in fit.callback_metrics) == (probe_kind == "int")
    streams = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1])  # noqa: NPY002
    return module, streams, snapshot.checked


def assert_the_guest_leaves_the_run_bit_identical(tmp_path, alteration, hook, probe_kind="tensor"):
    """Train 3 epochs without and with the callback: same weights, same global RNG state."""
    module_class = TinyEncoder if hook == "validation" else NoValidationEncoder
    plain, plain_rng, _ = _train(tmp_path, module_class, False, alteration, hook)
    guest, guest_rng, checked = _train(tmp_path, module_class, True, alteration, hook, probe_kind)
    assert checked == 3  # the snapshot compared state around every evaluation
    for (name, expected), (_, actual) in zip(plain.state_dict().items(), guest.state_dict().items()):
        assert torch.equal(expected, actual), name
    assert torch.equal(plain_rng[0], guest_rng[0])  # torch's stream
    assert plain_rng[1] == guest_rng[1] and (plain_rng[2] == guest_rng[2]).all()  # Python's and NumPy's


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=6), PGD(levels=4)], ids=["noise", "pgd"])
@pytest.mark.parametrize("hook", ["validation", "train"])
def test_a_run_with_the_callback_trains_bit_identical_weights(tmp_path, alteration, hook):
    assert_the_guest_leaves_the_run_bit_identical(tmp_path, alteration, hook)


@pytest.mark.parametrize("hook", ["validation", "train"])
def test_an_alteration_drawing_from_the_global_stream_leaves_the_run_bit_identical(tmp_path, hook):
    assert_the_guest_leaves_the_run_bit_identical(tmp_path, ImpureNoise(levels=5), hook)


@pytest.mark.parametrize("hook", ["validation", "train"])
def test_noise_made_ahead_on_a_helper_thread_leaves_the_run_bit_identical(tmp_path, monkeypatch, hook):
    monkeypatch.setattr(alteration_base, "idle_cores", lambda: 1)  # as if torch left a core idle
    assert_the_guest_leaves_the_run_bit_identical(tmp_path, GaussianNoise(levels=6), hook)


@pytest.mark.parametrize("probe_kind", ["loader", "augmented-dataset", "python-random-dataset", "int"])
@pytest.mark.parametrize("hook", ["validation", "train"])
def test_reading_any_kind_of_probe_leaves_the_run_bit_identical(tmp_path, probe_kind, hook):
    assert_the_guest_leaves_the_run_bit_identical(tmp_path, GaussianNoise(levels=6), hook, probe_kind)


class CountsSteps(TinyEncoder):
    def training_step(self, batch, batch_idx):
        self.steps = getattr(self, "steps", 0) + 1
        return super().training_step(batch, batch_idx)


def test_a_wrong_embed_name_fails_before_training(tmp_path):
    module = CountsSteps()
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), embed="backbone.99")
    with pytest.raises(ValueError, match=r"`embed`='backbone.99' names no submodule"):
        trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(module, *loaders())
    assert getattr(module, "steps", 0) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"probe": 0}, ValueError, "`probe` must be >= 1"),
        ({"probe": "images"}, TypeError, "`probe` must be a tensor"),
        ({"probe": torch.empty(0, 1, 8, 8)}, ValueError, "`probe` is empty"),
        ({"alterations": "noise"}, TypeError, "`alterations` must be"),
        ({"alterations": [GaussianNoise(), GaussianNoise(seed=1)]}, ValueError, "two alterations named 'noise'"),
        ({"alterations": {}}, ValueError, "`alterations` is empty"),
        ({"alterations": {"a/b": GaussianNoise()}}, ValueError, "`alterations` names"),
        ({"alterations": [object()]}, TypeError, "`alteration` must be"),
        ({"every_n_epochs": 0}, ValueError, "`every_n_epochs` must be >= 1"),
        ({"every_n_epochs": 1.5}, TypeError, "`every_n_epochs` must be an int"),
        ({"embed": 3}, TypeError, "`embed` must be"),
        ({"preprocess": "normalise"}, TypeError, "`preprocess` must be"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1"),
        ({"convention": "pandas"}, ValueError, "`convention` must be one of"),
        ({"normalize": "yes"}, TypeError, "`normalize` must be a bool"),
        ({"prefix": ""}, ValueError, "`prefix` must be a non-empty string"),
        ({"log_curves": 1}, TypeError, "`log_curves` must be a bool"),
        ({"progress": "on"}, TypeError, "`progress` must be a bool"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    arguments = {"probe": probe_tensor(4), **kwargs}
    with pytest.raises(error, match=match):
        RMQMCallback(**arguments)
