"""Bad inputs refused (or explained) before the first training step, and what the callback says of RMQM's cost.

Each refusal is a real ``Trainer.fit`` whose module counts its training steps: the error must come
with the count still at 0. Timings come from a module that sleeps a known time per input in eval
mode (the evaluations) or per training step, not from this machine's speed.
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager

import pytest
from lightning_fabric.utilities.rank_zero import rank_zero_module
from lightning_helpers import TinyEncoder, loaders, trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from test_callback import KEY, probe_tensor

from rmqm_callback import PGD, GaussianNoise, RMQMCallback
from rmqm_callback.lightning._cost_notice import CostNotice


class CountsSteps(TinyEncoder):
    def training_step(self, batch, batch_idx):
        self.steps = getattr(self, "steps", 0) + 1
        return super().training_step(batch, batch_idx)


def _fails_before_training(tmp_path, callbacks, match, module=None, error=ValueError, **trainer_settings):
    module = CountsSteps() if module is None else module
    with pytest.raises(error, match=match) as raised:
        trainer(tmp_path, max_epochs=2, callbacks=callbacks, **trainer_settings).fit(module, *loaders())
    assert getattr(module, "steps", 0) == 0
    return raised.value


# ------------------------------------------------------------------ a monitor that never checks


@pytest.mark.parametrize(
    ("monitor", "fix"),
    [
        (lambda path: EarlyStopping(KEY, mode="max", check_on_train_epoch_end=False),
         r"its best_score stays at its start.*Use EarlyStopping\(check_on_train_epoch_end=True\)"),
        (lambda path: ModelCheckpoint(dirpath=path, monitor=KEY, mode="max", save_on_train_epoch_end=False),
         r"best_model_score stays None.*Use ModelCheckpoint\(save_on_train_epoch_end=True\)\."),
    ],
    ids=["EarlyStopping", "ModelCheckpoint"],
)  # fmt: skip
def test_a_monitor_after_validation_in_a_run_that_never_validates_is_refused(tmp_path, monitor, fix):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    match = r"checks 'rmqm/noise/RMQM' only after validation, but this run never validates"
    match += r" \(Trainer\(limit_val_batches=0\)\)"
    _fails_before_training(
        tmp_path, [monitor(tmp_path / "ckpt"), callback], match + ".*" + fix, limit_val_batches=0,
        enable_checkpointing=True,
    )  # fmt: skip


def test_the_fix_named_for_a_monitor_that_never_checks_works(tmp_path):
    stopper = EarlyStopping(KEY, mode="max", check_on_train_epoch_end=True, patience=100)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=KEY, mode="max", save_on_train_epoch_end=True)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16)
    fit = trainer(
        tmp_path,
        max_epochs=1,
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[stopper, checkpoint, callback],
    )
    fit.fit(TinyEncoder(), *loaders())
    assert float(stopper.best_score) == pytest.approx(callback.last_results["noise"]["RMQM"], rel=1e-6)
    assert float(checkpoint.best_model_score) == pytest.approx(callback.last_results["noise"]["RMQM"], rel=1e-6)


def test_a_monitor_that_never_checks_with_every_n_epochs_gets_both_changes(tmp_path):
    stopper = EarlyStopping(KEY, mode="max", check_on_train_epoch_end=False)
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=4), batch_size=16, every_n_epochs=2)
    match = (
        r"never validates.*Use EarlyStopping\(check_on_train_epoch_end=True\).*, and RMQMCallback\(every_n_epochs=1\)"
    )
    _fails_before_training(tmp_path, [stopper, callback], match, limit_val_batches=0)


# ------------------------------------------------------------------ the model's own error in the guest pass


class FailsOnThirdCall(CountsSteps):
    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise RuntimeError("the model's own bug")
        return super().forward(x)


def test_the_models_own_error_in_the_fit_start_guest_pass_is_reported_as_the_models(tmp_path):
    """The issue's case: GaussianNoise(levels=12) and a model that raises on its third forward call."""
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=12), batch_size=16)
    error = _fails_before_training(tmp_path, [callback], r"RMQMCallback: the model failed on the guest trajectory",
                                   module=FailsOnThirdCall())  # fmt: skip
    message = str(error)
    # call 1: the clean pass; then 12 levels of 2 probes, 8 levels per forward pass of batch_size=16 inputs
    assert "alterations['noise'] = GaussianNoise(levels=12" in message
    assert "at levels 8-11, in a forward pass of inputs of shape (8, 1, 8, 8)" in message
    assert "labels" not in message
    assert isinstance(error.__cause__, RuntimeError) and str(error.__cause__) == "the model's own bug"


# ------------------------------------------------------------------ PGD's default loss and one-probe batches


@pytest.mark.parametrize(("probes", "batch_size"), [(17, 16), (1, 16), (8, 1)])
def test_pgd_with_a_one_probe_batch_is_refused_before_the_first_step(tmp_path, probes, batch_size):
    callback = RMQMCallback(probe_tensor(probes), PGD(levels=3), batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a one-sample probe's NaN standard errors
        _fails_before_training(
            tmp_path, [callback], r"RMQMCallback: alterations\['pgd'\] = PGD\(.*needs at least 2 probes"
        )


# ------------------------------------------------------------------ the cost: forecast, limit, notice


class SlowEvaluation(TinyEncoder):
    """Sleeps ``seconds`` per input in eval mode (the evaluations), and ``step_seconds`` per training step."""

    def __init__(self, seconds: float = 0.0, step_seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.step_seconds = step_seconds

    def forward(self, x):
        if not self.training:
            time.sleep(self.seconds * x.shape[0])
        return super().forward(x)

    def training_step(self, batch, batch_idx):
        time.sleep(self.step_seconds)
        return super().training_step(batch, batch_idx)


@contextmanager
def _lightning_info():
    """The messages Lightning's ``rank_zero_info`` gives (its logger does not propagate to pytest's)."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = rank_zero_module.log
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_forecast_is_logged_once_at_fit_start(tmp_path):
    seconds, probes, levels = 0.002, 32, 4
    callback = RMQMCallback(probe_tensor(probes), GaussianNoise(levels=levels), batch_size=256)
    with _lightning_info() as records, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cost notice
        trainer(tmp_path, max_epochs=1, callbacks=[callback]).fit(SlowEvaluation(seconds), *loaders())
    forecasts = [record for record in records if "is forecast at" in record]
    assert len(forecasts) == 1
    assert forecasts[0].startswith(f"RMQMCallback: one evaluation of {probes} probes is forecast at about")
    forecast = float(forecasts[0].split("about ")[1].split(" s")[0])
    assert forecast >= probes * levels * seconds  # every input of the evaluation sleeps


def test_ten_million_levels_are_refused_at_fit_start_in_seconds(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=10**7), batch_size=16)
    start = time.perf_counter()
    _fails_before_training(tmp_path, [callback], r"RMQMCallback: the guest pass of 2 probes.*over its limit of 60 s")
    assert time.perf_counter() - start < 30


def test_the_guest_pass_limit_can_be_set_on_the_callback(tmp_path):
    callback = RMQMCallback(probe_tensor(), GaussianNoise(levels=300), batch_size=2)
    callback.guest_pass_limit_s = 0.5
    model = SlowEvaluation(0.005)  # 300 levels of 2 probes: 3 s
    _fails_before_training(tmp_path, [callback], r"forecast at .* over its limit of 0.5 s", module=model)


def _first_evaluation_notices(tmp_path, model, probes, levels, max_epochs):
    # one block, several levels per forward pass: few sleeps (a loaded machine wakes a sleeper late)
    callback = RMQMCallback(probe_tensor(probes), GaussianNoise(levels=levels), batch_size=256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path, max_epochs=max_epochs, callbacks=[callback]).fit(model, *loaders())
    return [str(warning.message) for warning in caught if "the first evaluation" in str(warning.message)]


def test_an_evaluation_dearer_than_a_quarter_of_the_training_is_said_once(tmp_path):
    # the evaluation sleeps 32 x 24 x 1 ms = 0.77 s; the epoch's 6 training steps of the tiny model take less than
    # a quarter of that even on a loaded machine, warm-up included (about 0.1 s here, 2.4 s when loaded)
    notices = _first_evaluation_notices(tmp_path, SlowEvaluation(seconds=0.001), probes=32, levels=24, max_epochs=2)
    assert len(notices) == 1  # two epochs, one notice
    notice = notices[0]
    assert notice.startswith("RMQMCallback: the first evaluation (epoch 0) took")
    assert float(notice.split("took ")[1].split(" s")[0]) >= 32 * 24 * 0.001
    assert "% of the" in notice and "the epoch trained before it: RMQM takes" in notice
    assert "It does 768 forward passes of one probe" in notice
    assert "GaussianNoise(levels=10) on 64 probes" in notice and "at 0.025 of its forward passes" in notice
    assert "RMQMCallback(every_n_epochs=n)" in notice


def test_an_evaluation_cheap_beside_the_training_is_not_said(tmp_path):
    # 6 training steps of 0.3 s against an evaluation of 16 probes x 4 levels of a tiny model
    model = SlowEvaluation(step_seconds=0.3)
    assert _first_evaluation_notices(tmp_path, model, probes=16, levels=4, max_epochs=1) == []


def test_the_notice_words_only_what_applies():
    """The wording, with given times: the share, the cheaper setting only where it is cheaper, once per fit."""
    notice = CostNotice()
    notice.start_fit()
    notice.epoch_started(at=10.0)
    text = notice.after_evaluation(12.0, 14.0, epoch=3, probes=16, levels=4, every_n_epochs=2)
    assert text is not None
    assert text.startswith("RMQMCallback: the first evaluation (epoch 3) took 2 s, 100% of the 2 s")
    assert "RMQM takes 50% of that time" in text
    assert "GaussianNoise(levels=10)" not in text  # 64 forward passes are fewer than the study's 640
    assert "RMQMCallback(every_n_epochs=4 or more)" in text
    assert notice.after_evaluation(20.0, 30.0, epoch=4, probes=16, levels=4, every_n_epochs=2) is None  # once
    notice.start_fit()  # a new fit measures its first evaluation again
    notice.epoch_started(at=0.0)
    notice.validation_started()  # (now, long after 0.0): the training ran until this validation
    assert notice.after_evaluation(1e9, 1e9 + 1.0, epoch=0, probes=512, levels=100, every_n_epochs=1) is None
    notice.start_fit()
    notice.epoch_started(at=0.0)
    assert notice.after_evaluation(4.0, 5.0, epoch=0, probes=512, levels=100, every_n_epochs=1) is None  # exactly 25%
    notice.start_fit()
    notice.epoch_started(at=0.0)
    text = notice.after_evaluation(4.0, 5.5, epoch=0, probes=512, levels=100, every_n_epochs=1)
    assert text is not None and "It does 51,200 forward passes" in text and "0.025 of its forward passes" in text
