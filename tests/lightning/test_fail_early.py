"""Every set-up that cannot work fails before the first training step, naming the culprit and the fix.

Each case is a real ``Trainer.fit`` whose module counts its training steps: the error must come
with the count still at 0. The silent no-ops (``validate``, ``barebones``, a second ``fit``, a
one-sample probe) now do what they say or say why.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F
from lightning_helpers import TinyEncoder, digits_like_data, loaders, trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from test_callback import KEY, probe_tensor
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from rmqm_callback import PGD, RMQM, GaussianNoise, InputAlteration, RMQMCallback, score


class CountsSteps(TinyEncoder):
    def training_step(self, batch, batch_idx):
        self.steps = getattr(self, "steps", 0) + 1
        return super().training_step(batch, batch_idx)


def _fails_before_training(tmp_path, callback, error, match, module=None, data=None, **trainer_settings):
    module = CountsSteps() if module is None else module
    settings = {"max_epochs": 2, **trainer_settings}
    with pytest.raises(error, match=match):
        fit = trainer(tmp_path, callbacks=[*settings.pop("extra", []), callback], **settings)
        fit.fit(module, *(data or loaders()))
    assert getattr(module, "steps", 0) == 0


# ------------------------------------------------------------------ probes


def test_an_int_probe_whose_first_validation_comes_later_is_checked_before_training(tmp_path):
    train, _ = loaders()
    images, labels = digits_like_data(48, seed=1)
    normalised = DataLoader(TensorDataset((images - 0.5) / 0.25, labels), batch_size=16)  # outside clip=(0, 1)
    callback = RMQMCallback(16, GaussianNoise(levels=6), batch_size=16)
    _fails_before_training(
        tmp_path, callback, ValueError, r"GaussianNoise alters inputs in the raw input range clip=\(0.0, 1.0\)",
        data=(train, normalised), check_val_every_n_epoch=2,
    )


class Endless(IterableDataset):
    def __iter__(self):
        for index in itertools.count():
            yield torch.full((1, 8, 8), (index % 7) / 7)


def test_an_endless_probe_loader_is_refused_in_bounded_time(tmp_path):
    callback = RMQMCallback(DataLoader(Endless(), batch_size=512), GaussianNoise(levels=4), batch_size=16)
    start = time.perf_counter()
    _fails_before_training(tmp_path, callback, ValueError, r"probe DataLoader has no length .*is its dataset endless")
    assert time.perf_counter() - start < 60


def test_a_one_dimensional_probe_for_a_conv_model_names_the_probe(tmp_path):
    callback = RMQMCallback(torch.rand(64), GaussianNoise(levels=4), batch_size=16)
    _fails_before_training(tmp_path, callback, ValueError, r"guest forward pass of 2 probes \(shape \(2,\).*1-D probe")


def test_a_probe_on_the_meta_device_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"`probe` inputs of shape \(8, 1, 8, 8\) are on the meta device"):
        RMQMCallback(torch.empty(8, 1, 8, 8, device="meta"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_a_probe_of_another_dtype_than_the_model_names_the_fix(tmp_path, dtype):
    probe = probe_tensor().to(dtype)
    match = rf"guest forward pass of 2 probes \(shape \(2, 1, 8, 8\), dtype {dtype}.*probe.to\(torch.float32\)"
    _fails_before_training(tmp_path, RMQMCallback(probe, GaussianNoise(levels=4), batch_size=16), ValueError, match)
    with pytest.raises(ValueError, match=rf"score\(\): the model failed on a {match}"):
        score(TinyEncoder(), probe, GaussianNoise(levels=4))


def test_a_one_sample_probe_explains_its_nan_standard_errors(tmp_path):
    callback = RMQMCallback(probe_tensor(1), GaussianNoise(levels=4), batch_size=16)
    with pytest.warns(UserWarning, match=r"single sample, so the standard errors .* are NaN"):
        trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), *loaders())
    assert math.isnan(callback.last_results["noise"]["D_se"])


# ------------------------------------------------------------------ alterations


def _cross_entropy(output, clean, labels):
    return F.cross_entropy(output, labels)


def test_pgd_with_a_loss_that_needs_labels_and_a_probe_without_them(tmp_path):
    class Classifier(CountsSteps):
        def forward(self, x):  # the logits, so the loss gets them
            return self.head(self.backbone(x))

    callback = RMQMCallback(probe_tensor(), PGD(levels=3, loss=_cross_entropy), batch_size=16)
    match = r"alterations\['pgd'\] = PGD\(.*failed on a guest trajectory of 2 probes .*no labels.*probe=\(inputs,"
    _fails_before_training(tmp_path, callback, TypeError, match, module=Classifier())


class Misbehaving(InputAlteration):
    name = "custom"

    def __init__(self, how: str) -> None:
        super().__init__(levels=4)
        self.how = how

    def alter(self, inputs, indices, level):
        if self.how == "shape":
            return inputs.flatten(1)
        if self.how == "rows":
            return inputs[:1]
        if self.how == "dtype":
            return inputs.double()
        if self.how == "level0":
            return inputs + 0.1 * level + 0.01
        if self.how == "nan":
            return inputs * float("nan") if level == 2 else inputs
        return inputs.tolist()


@pytest.mark.parametrize(
    ("how", "error", "match"),
    [
        ("shape", ValueError, r"level=0\) returned shape \(2, 64\), dtype .* for inputs of shape \(2, 1, 8, 8\)"),
        ("rows", ValueError, r"level=0\) returned shape \(1, 1, 8, 8\)"),
        ("dtype", ValueError, r"returned shape \(2, 1, 8, 8\), dtype torch.float64, .* dtype torch.float32"),
        ("level0", ValueError, r"level 0 must be the unaltered inputs"),
        ("nan", ValueError, r"level=2\) returned non-finite"),
        ("list", TypeError, r"level=0\) returned a list, not a tensor"),
    ],
)
def test_a_custom_alterations_output_is_checked_before_training(tmp_path, how, error, match):
    callback = RMQMCallback(probe_tensor(), Misbehaving(how), batch_size=16)
    _fails_before_training(tmp_path, callback, error, r"alterations\['custom'\] = Misbehaving\(levels=4\): .*" + match)


# ------------------------------------------------------------------ monitors and schedule


def test_early_stopping_on_train_epoch_end_with_validation_every_second_epoch(tmp_path):
    stopper = EarlyStopping(monitor=KEY, mode="max", check_on_train_epoch_end=True)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    match = r"checks 'rmqm/noise/RMQM' at the end of training epochs .*in epoch 0 .*check_on_train_epoch_end=False"
    _fails_before_training(tmp_path, callback, ValueError, match, check_val_every_n_epoch=2, extra=[stopper])


def test_a_step_triggered_checkpoint_on_rmqm_is_refused(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", every_n_train_steps=2)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    match = r"saves on training steps or time.*stale value"
    _fails_before_training(tmp_path, callback, ValueError, match, enable_checkpointing=True, extra=[checkpoint])


def test_barebones_is_refused_at_setup_with_the_reason(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    module = CountsSteps()
    fit = trainer(
        tmp_path, barebones=True, max_epochs=1, callbacks=[callback],
        enable_checkpointing=False, logger=False, enable_progress_bar=False, enable_model_summary=False,
    )
    with pytest.raises(ValueError, match=r"Trainer\(barebones=True\) turns off.*logged nowhere"):
        fit.fit(module, *loaders())
    assert getattr(module, "steps", 0) == 0


# ------------------------------------------------------------------ validate, second fit


def test_validate_evaluates_and_logs_rmqm(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    module = TinyEncoder()
    results = trainer(tmp_path, callbacks=[callback]).validate(module, loaders()[1])
    offline = score(module, probe_tensor(), GaussianNoise(levels=6), batch_size=16)
    assert results[0][KEY] == pytest.approx(float(offline["RMQM"]), rel=1e-6)
    assert "rmqm/RankMe" in results[0]


def test_validate_a_checkpoint_scores_it_with_the_checkpoints_probe(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fitted = RMQMCallback(24, GaussianNoise(levels=6), batch_size=16)
    fit = trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint, fitted])
    fit.fit(TinyEncoder(), *loaders())
    logged = fitted.last_results["noise"]["RMQM"]
    # other validation data now: the checkpoint's probe is used, so the value is the logged one
    other = DataLoader(TensorDataset(*digits_like_data(48, seed=9)), batch_size=16)
    fresh = RMQMCallback(24, GaussianNoise(levels=6), batch_size=16)
    last = tmp_path / "ckpt" / "last.ckpt"
    results = trainer(tmp_path, callbacks=[fresh]).validate(TinyEncoder(), other, ckpt_path=last)
    assert results[0][KEY] == pytest.approx(logged, rel=1e-12)


def test_a_second_fit_on_other_data_takes_its_int_probe_afresh(tmp_path):
    callback = RMQMCallback(16, GaussianNoise(levels=4), batch_size=16)
    train, val = loaders()
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, val)
    assert torch.equal(callback._probe.inputs, digits_like_data(48, seed=1)[0][:16])
    other = DataLoader(TensorDataset(*digits_like_data(48, seed=5)), batch_size=16)
    trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyEncoder(), train, other)
    assert torch.equal(callback._probe.inputs, digits_like_data(48, seed=5)[0][:16])


# ------------------------------------------------------------------ the metric


def test_rmqm_forward_returns_detached_results():
    embeddings = torch.randn(6, 4, 3, requires_grad=True)
    metric = RMQM()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = metric(embeddings)
    assert not any(value.requires_grad for value in result.values())
    assert not metric.d_moments.requires_grad


def test_a_model_cast_to_half_keeps_the_metrics_float64_states():
    holder = nn.Module()
    holder.metric = RMQM()
    holder.to(torch.bfloat16)
    assert holder.metric.d_moments.dtype == torch.float64
    holder.metric.set_dtype(torch.float32)  # the one way to change it
    assert holder.metric.d_moments.dtype == torch.float32


def test_a_train_epoch_end_monitor_with_step_wise_validation_is_refused(tmp_path):
    stopper = EarlyStopping(monitor=KEY, mode="max", check_on_train_epoch_end=True)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    match = r"validates every so many steps.*EarlyStopping\(check_on_train_epoch_end=False\)"
    _fails_before_training(
        tmp_path, callback, ValueError, match, check_val_every_n_epoch=None, val_check_interval=5, extra=[stopper]
    )


@pytest.mark.parametrize(
    ("monitor", "match"),
    [
        ("rmqm/noise/D_se", r"'rmqm/noise/D_se', which no RMQMCallback .* logs \(it is now rmqm/noise/se/D\?\)"),
        ("rmqm/noise/D_prev", r"watches 'rmqm/noise/D_prev', which no RMQMCallback"),  # reference convention only
        ("rmqm/nosie/RMQM", r"watches 'rmqm/nosie/RMQM'.*they log: rmqm/RankMe"),
    ],
)
def test_a_monitor_of_a_key_no_callback_logs_is_refused(tmp_path, monitor, match):
    stopper = EarlyStopping(monitor=monitor, mode="max")
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    _fails_before_training(tmp_path, callback, ValueError, match, extra=[stopper])


def test_validate_with_a_checkpoint_of_another_callback_says_its_probe_is_not_used(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fitted = RMQMCallback(24, GaussianNoise(levels=6), batch_size=16)
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint, fitted]).fit(
        TinyEncoder(), *loaders()
    )
    other = RMQMCallback(24, GaussianNoise(levels=8), batch_size=16)  # another state_key
    with pytest.warns(UserWarning, match=r"holds the state of RMQMCallbacks with other alterations or prefix"):
        last = tmp_path / "ckpt" / "last.ckpt"
        trainer(tmp_path, callbacks=[other]).validate(TinyEncoder(), loaders()[1], ckpt_path=last)
