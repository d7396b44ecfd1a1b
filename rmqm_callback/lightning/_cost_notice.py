"""What RMQM costs a training run: said once per ``fit``, after the first evaluation, when it is a lot.

:class:`CostNotice` times each training epoch outside validation (and outside the callback's own
evaluation), and compares the first evaluation with the training of its epoch before it: with
``val_check_interval < 1`` that is the training since the epoch began, so the share is the same
as over a whole epoch. Above :data:`NOTICE_SHARE` it says so on process 0, with the cheaper
settings the cost-fidelity study measured (``examples/results/cost_fidelity_digits.md``).
"""

from __future__ import annotations

import time

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

#: Say so when the first evaluation took more than this share of its epoch's training time.
NOTICE_SHARE = 0.25

#: The cheap setting of the cost-fidelity study: forward passes per evaluation (10 levels x 64 probes).
STUDY_FORWARD_PASSES = 10 * 64


class CostNotice:
    """Times training epochs, and words the notice after a fit's first evaluation.

    Times are ``time.perf_counter()`` readings (taken now where not given).

    Examples:
        >>> notice = CostNotice()
        >>> notice.start_fit()
        >>> notice.epoch_started(at=100.0)
        >>> text = notice.after_evaluation(104.0, 116.0, epoch=0, probes=64, levels=10, every_n_epochs=1)
        >>> print(text)  # doctest: +NORMALIZE_WHITESPACE
        RMQMCallback: the first evaluation (epoch 0) took 12 s, 300% of the 4 s the epoch trained before it:
        RMQM takes 75% of that time. Evaluating less often costs less: RMQMCallback(every_n_epochs=n).
        >>> notice.after_evaluation(204.0, 216.0, epoch=1, probes=64, levels=10, every_n_epochs=1) is None  # once
        True

    """

    def __init__(self) -> None:
        self._epoch_start: float | None = None
        self._validation_start: float | None = None
        self._outside = 0.0  # seconds of this epoch spent validating (our evaluations included)
        self._done = True  # until a fit starts

    def start_fit(self) -> None:
        """A new ``fit``: its first evaluation is measured."""
        self._done = False
        self._epoch_start = None

    def epoch_started(self, at: float | None = None) -> None:
        """A training epoch begins."""
        self._epoch_start = time.perf_counter() if at is None else at
        self._outside = 0.0
        self._validation_start = None

    def validation_started(self) -> None:
        """A validation of the training run begins."""
        self._validation_start = time.perf_counter()

    def validation_ended(self) -> None:
        """That validation ended: its time is not training time."""
        if self._validation_start is not None:
            self._outside += time.perf_counter() - self._validation_start
            self._validation_start = None

    def after_evaluation(
        self, started: float, ended: float, *, epoch: int, probes: int, levels: int, every_n_epochs: int
    ) -> str | None:
        """The notice after the fit's first evaluation, if it cost more than :data:`NOTICE_SHARE`; else ``None``.

        Args:
            started: when the evaluation began.
            ended: when it ended.
            epoch: the epoch it ran in.
            probes: the probes it scored.
            levels: the levels of all its alterations together.
            every_n_epochs: the callback's ``every_n_epochs``.

        """
        if self._done or self._epoch_start is None:
            return None
        self._done = True
        # the training before it: up to this validation (or to the evaluation), less earlier validations
        until = started if self._validation_start is None else self._validation_start
        training = until - self._epoch_start - self._outside
        seconds = ended - started
        if training <= 0 or seconds <= NOTICE_SHARE * training:
            return None
        passes = probes * levels
        cheaper = ""
        if passes > STUDY_FORWARD_PASSES:
            cheaper = (
                f" It does {passes:,} forward passes of one probe (probes x levels), and fewer cost less:"
                " GaussianNoise(levels=10) on 64 probes (RMQMCallback(probe=64, alterations=GaussianNoise(levels=10)))"
                " ranked the 120 digits encoders of the cost-fidelity study like the full setting (100 levels on 256"
                " probes; Spearman 0.99) at 0.025 of its forward passes (examples/results/cost_fidelity_digits.md)."
            )
        often = f"every_n_epochs={every_n_epochs * 2} or more" if every_n_epochs > 1 else "every_n_epochs=n"
        return (
            f"RMQMCallback: the first evaluation (epoch {epoch}) took {seconds:.3g} s, {seconds / training:.0%} of the"
            f" {training:.3g} s the epoch trained before it: RMQM takes {seconds / (seconds + training):.0%} of"
            f" that time.{cheaper} Evaluating less often costs less{' too' if cheaper else ''}:"
            f" RMQMCallback({often})."
        )

    def say(self, started: float, *, epoch: int, probes: int, levels: int, every: int) -> None:
        """After an evaluation that began at ``started`` and ends now: warn (process 0) if it is the notice's."""
        notice = self.after_evaluation(
            started, time.perf_counter(), epoch=epoch, probes=probes, levels=levels, every_n_epochs=every
        )
        if notice is not None:
            rank_zero_warn(notice)
