"""When the callback evaluates in ``fit``, and whether every monitor of its keys finds a fresh value.

:class:`EvaluationSchedule` is the one place that decides it: at the end of validation in every
epoch ``e`` with ``(e + 1) % every_n_epochs == 0`` when the run validates, at the end of the
training epoch otherwise (no validation, or an empty validation set). The int probe is taken from
the data the evaluations follow, and :func:`check_monitors` holds every ``EarlyStopping`` and
``ModelCheckpoint`` that watches an RMQM key against the same schedule, before training starts:
it must check at all, and find a fresh value at every check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rmqm_callback.evaluation._rng import untouched_random_streams
from rmqm_callback.lightning._namespaces import Trainer, is_instance

#: Epochs looked at when matching a monitor's checks against the evaluations (one common period).
_HORIZON_CAP = 10_000


def _validation_batches(trainer: Trainer) -> float:
    """Batches of all validation loaders (``inf`` for a loader without a length)."""
    batches = trainer.num_val_batches
    return float(sum(batches)) if isinstance(batches, list) else float(batches)


@dataclass(frozen=True)
class EvaluationSchedule:
    """The epochs (and the hook) at which RMQM is computed and logged during ``fit``.

    Attributes:
        every_n_epochs: evaluate in epochs ``e`` with ``(e + 1) % every_n_epochs == 0``.
        at_validation: evaluate at the end of validation (else at the end of the training epoch).
        validation_every: ``Trainer(check_val_every_n_epoch)``; ``None`` when validation runs
            every so many training steps, across epochs.

    Examples:
        >>> schedule = EvaluationSchedule(every_n_epochs=2, at_validation=True, validation_every=3)
        >>> [epoch for epoch in range(12) if schedule.evaluates(epoch)], schedule.first_epoch()
        ([5, 11], 5)

    """

    every_n_epochs: int
    at_validation: bool
    validation_every: int | None

    @classmethod
    def of(cls, trainer: Trainer, every_n_epochs: int) -> EvaluationSchedule:
        """The schedule of a ``fit`` about to train; loads the validation data if Lightning has not yet."""
        every = 1 if getattr(trainer, "fast_dev_run", False) else every_n_epochs  # a smoke test runs everything
        at_validation = bool(trainer.enable_validation)
        if at_validation and trainer.val_dataloaders is None:
            # the first validation comes later (no sanity check): load its data now, as that
            # validation would, so that the probe and the monitors are checked before training
            with untouched_random_streams():  # the val_dataloader() hook is user code
                trainer.fit_loop.epoch_loop.val_loop.setup_data()
        if at_validation and _validation_batches(trainer) == 0:
            at_validation = False  # an empty validation set: evaluate at the training epoch end
        return cls(every, at_validation, trainer.check_val_every_n_epoch)

    @property
    def source(self) -> str:
        """The data an int probe is taken from: ``"validation"`` or ``"training"``."""
        return "validation" if self.at_validation else "training"

    def validates(self, epoch: int) -> bool | None:
        """Whether the run validates in ``epoch`` (``None``: it validates by steps, in any epoch)."""
        if not self.at_validation:
            return False
        if self.validation_every is None:
            return None
        return (epoch + 1) % self.validation_every == 0

    def evaluates(self, epoch: int) -> bool:
        """Whether RMQM is logged in ``epoch`` (at its validations, when the run validates)."""
        due = (epoch + 1) % self.every_n_epochs == 0
        if not self.at_validation:
            return due
        return due and self.validates(epoch) is not False

    def first_epoch(self) -> int:
        """The first epoch in which RMQM is logged."""
        return next(epoch for epoch in range(self._horizon()) if self.evaluates(epoch))

    def checks(self, hook: str, every_n_epochs: int) -> list[int]:
        """The epochs (within one common period) in which a monitor checking at ``hook`` runs.

        ``hook`` is ``"validation"`` (after each validation; none where the evaluations follow the
        training epochs) or ``"train_epoch_end"``; the monitor acts every ``every_n_epochs`` epochs.
        """
        acting = range(every_n_epochs - 1, self._horizon(every_n_epochs), every_n_epochs)
        if hook == "validation":
            return [epoch for epoch in acting if self.validates(epoch) is not False]
        return list(acting)

    def _horizon(self, *periods: int) -> int:
        return min(math.lcm(self.every_n_epochs, self.validation_every or 1, *periods), _HORIZON_CAP)


def _monitor_checks(monitor: Any, trainer: Trainer) -> tuple[str, int] | None:
    """``(hook, every_n_epochs)`` of a monitoring callback's checks, or ``None`` if it does not check on epochs."""
    if is_instance(monitor, "callbacks", "EarlyStopping"):
        return ("train_epoch_end" if monitor._check_on_train_epoch_end else "validation"), 1
    if is_instance(monitor, "callbacks", "ModelCheckpoint"):
        if monitor._every_n_train_steps > 0 or monitor._train_time_interval is not None:
            return "steps", 0
        if monitor._every_n_epochs < 1:
            return None
        hook = "train_epoch_end" if monitor._should_save_on_train_epoch_end(trainer) else "validation"
        return hook, monitor._every_n_epochs
    return None


def _fixes(monitor: Any, hook: str, schedule: EvaluationSchedule) -> list[tuple[str, int, EvaluationSchedule, str]]:
    """Changes that would give the monitor a fresh value at every check: ``(hook, every, schedule, text)``."""
    n = schedule.every_n_epochs
    aligned = EvaluationSchedule(n, schedule.at_validation, n)  # validation only on the evaluated epochs
    if is_instance(monitor, "callbacks", "EarlyStopping"):
        text = "EarlyStopping(check_on_train_epoch_end=False), which checks after validation"
        fixes = [("validation", 1, schedule, text)]
        text = f"Trainer(check_val_every_n_epoch={n}), which validates only on those epochs (and EarlyStopping then"
        fixes.append(("validation", 1, aligned, f"{text} checks after validation, its default)"))
        text = "EarlyStopping(check_on_train_epoch_end=True), which checks at the end of every training epoch"
        fixes.append(("train_epoch_end", 1, schedule, text))
    else:
        every = monitor._every_n_epochs
        fixes = [("validation", every, schedule, "ModelCheckpoint(save_on_train_epoch_end=False)")]
        fixes.append((hook, n, schedule, f"ModelCheckpoint(every_n_epochs={n})"))
        fixes.append(("train_epoch_end", every, schedule, "ModelCheckpoint(save_on_train_epoch_end=True)"))
        fixes.append(
            ("train_epoch_end", n, schedule, f"ModelCheckpoint(save_on_train_epoch_end=True, every_n_epochs={n})")
        )
    return fixes


def _fresh_at_every_check(schedule: EvaluationSchedule, hook: str, every: int) -> bool:
    """Whether a monitor checking at ``hook`` every ``every`` epochs checks at all, and finds a fresh value each time.

    The one rule every monitor of an RMQM key is held to: a monitor that never checks (after
    validation, in a run that never validates) keeps its initial best (``-inf``, ``None``) without
    a word, and one that checks in an epoch without an evaluation reads a missing or stale value.
    """
    checks = schedule.checks(hook, every)
    return bool(checks) and all(schedule.evaluates(epoch) for epoch in checks)


def _fix(monitor: Any, hook: str, every: int, schedule: EvaluationSchedule) -> str:
    """The first change that works; else ``RMQMCallback(every_n_epochs=1)``, alone or with the change it needs."""
    for fix_hook, fix_every, fixed, text in _fixes(monitor, hook, schedule):
        if _fresh_at_every_check(fixed, fix_hook, fix_every):
            return text
    every_epoch = EvaluationSchedule(1, schedule.at_validation, schedule.validation_every)
    if _fresh_at_every_check(every_epoch, hook, every):
        return "RMQMCallback(every_n_epochs=1)"
    for fix_hook, fix_every, fixed, text in _fixes(monitor, hook, every_epoch):
        if _fresh_at_every_check(fixed, fix_hook, fix_every):
            return f"{text}, and RMQMCallback(every_n_epochs=1)"
    return "RMQMCallback(every_n_epochs=1)"


def _why_no_validation(trainer: Trainer) -> str:
    """Why a run does not validate, in the words of its settings."""
    if getattr(trainer, "limit_val_batches", 1) == 0:
        return "Trainer(limit_val_batches=0)"
    if not getattr(trainer, "enable_validation", False):
        return "no validation_step or no validation data"
    return "an empty validation set"


def _unknown_key(key: str, known: set[str]) -> str:
    """The message for a monitor of a key no RMQMCallback logs (a typo, a renamed key, a convention's key)."""
    renamed = {"_se": "se/", "_left_out": "left_out/"}
    hint = ""
    for old, new in renamed.items():
        if key.endswith(old):
            stem, _, quantity = key.rpartition("/")
            hint = f" (it is now {stem}/{new}{quantity.replace(old, '')}?)"
    return (
        f"a monitor watches {key!r}, which no RMQMCallback of this trainer logs{hint}; they log:"
        f" {', '.join(sorted(known)[:12])}{'...' if len(known) > 12 else ''}."
    )


def check_monitors(trainer: Trainer, schedule: EvaluationSchedule, logged_keys: set[str], prefix: str) -> None:
    """Fail before training where an ``EarlyStopping``/``ModelCheckpoint`` would find our key stale or missing.

    Args:
        trainer: the trainer, whose callbacks are the monitors.
        schedule: when RMQM is logged.
        logged_keys: every key the callback logs.
        prefix: the callback's ``prefix``: a monitored key under it must be one some RMQMCallback logs.

    Raises:
        ValueError: naming the monitor, the first epoch in which it would find no fresh value, and a fix.

    """
    if getattr(trainer, "fast_dev_run", False):  # monitors do not act in a smoke test
        return
    callbacks = getattr(trainer, "callbacks", [])
    known = set().union(*(getattr(callback, "logged_keys", set()) for callback in callbacks))
    unlogged = {key: why for callback in callbacks for key, why in getattr(callback, "unlogged_keys", {}).items()}
    for monitor in callbacks:
        key = getattr(monitor, "monitor", None)
        if not isinstance(key, str) or not key.startswith(f"{prefix}/"):
            continue
        if key not in known:  # a key RMQMCallback does not log here says why; any other is a typo
            raise ValueError(f"{type(monitor).__name__}: {unlogged.get(key) or _unknown_key(key, known)}")
        checks = _monitor_checks(monitor, trainer) if key in logged_keys else None
        if checks is None:
            continue
        hook, every = checks
        name = type(monitor).__name__
        if hook == "steps":
            raise ValueError(
                f"{name}(monitor={key!r}) saves on training steps or time, but RMQMCallback logs it only at epoch"
                " ends, so the checkpoints would be ranked by a stale value. Use ModelCheckpoint(every_n_epochs=...)"
                " instead of every_n_train_steps / train_time_interval."
            )
        if hook == "train_epoch_end" and schedule.at_validation and schedule.validation_every is None:
            flag = "check_on_train_epoch_end" if name == "EarlyStopping" else "save_on_train_epoch_end"
            raise ValueError(
                f"{name} checks {key!r} at the end of every training epoch, but the run validates every so many steps"
                f" (check_val_every_n_epoch=None), and RMQMCallback logs it at those validations: some epochs would"
                f" have no fresh value. Use {name}({flag}=False), which checks after each validation."
            )
        if _fresh_at_every_check(schedule, hook, every):
            continue
        fix = _fix(monitor, hook, every, schedule)
        checks_at = schedule.checks(hook, every)
        if not checks_at:  # after validation, in a run that never validates
            best = (
                "its best_score stays at its start, +-inf" if name == "EarlyStopping" else "best_model_score stays None"
            )
            raise ValueError(
                f"{name} checks {key!r} only after validation, but this run never validates"
                f" ({_why_no_validation(trainer)}): RMQMCallback logs it at the end of training epochs, where {name}"
                f" does not look, so it would never check it ({best}, with no word). Use {fix}."
            )
        missed = [epoch for epoch in checks_at if not schedule.evaluates(epoch)]
        where = "at the end of training epochs" if hook == "train_epoch_end" else "after the validations of epochs"
        when = "validations" if schedule.at_validation else "training epoch ends"
        logged = [epoch for epoch in range(schedule._horizon(every)) if schedule.evaluates(epoch)]
        raise ValueError(
            f"{name} checks {key!r} {where} {checks_at[:4]}..., but"
            f" RMQMCallback(every_n_epochs={schedule.every_n_epochs}) logs it only at the {when} of epochs"
            f" {logged[:4]}...: in epoch {missed[0]} it would find no value, or a stale one. Use {fix}."
        )
