"""The guest pass's clock: a forecast of the evaluation's cost, and a bound on the guest pass itself.

The guest pass sends two probes through every level of every alteration, so it costs what an
evaluation costs per probe: its measured time, scaled to the probes an evaluation scores, is the
forecast of one evaluation (an upper estimate where small batches run less efficiently, as PGD's
two-probe steps do). While it runs, :class:`GuestClock` extrapolates each stage (checking the
alterations' outputs, walking the trajectories) from the levels done so far, and stops a guest
pass forecast to take more than :data:`GUEST_PASS_LIMIT_S` before it spends that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: The most seconds a guest pass of two probes may take. A guest pass costs what two probes of an
#: evaluation cost, so one of 60 s forecasts 32 minutes per evaluation of the 64 probes that the
#: cost-fidelity study found enough to rank encoders, and 4.3 hours of the default 512: no run
#: can evaluate that every few epochs, and a user learns it after one minute, not after hours.
GUEST_PASS_LIMIT_S = 60.0

#: A stage is extrapolated once it has run this long past its first step (the first step, which
#: may include warm-up work, is timed but not extrapolated): a shorter sample is noise.
MEASURED_AT_LEAST_S = 1.0


#: What to change when the guest pass is too slow.
FEWER_LEVELS = (
    "Use fewer levels (the paper: GaussianNoise(levels=100), PGD(levels=30); the cost-fidelity study ranked its"
    " digits encoders as well with GaussianNoise(levels=10) on 64 probes), or a smaller model."
)


def evaluated_probes(num_probes: int | None, batch_size: int, world_size: int) -> int | None:
    """The probes the busiest process scores: blocks of ``batch_size`` dealt round-robin to ``world_size``.

    Examples:
        >>> evaluated_probes(1000, 256, 1), evaluated_probes(1000, 256, 2), evaluated_probes(None, 256, 1)
        (1000, 512, None)

    """
    if num_probes is None:
        return None
    blocks = -(-num_probes // batch_size)
    return sum(min(batch_size, num_probes - block * batch_size) for block in range(0, blocks, world_size))


class GuestPassTooSlow(ValueError):
    """The guest pass is forecast to take longer than its limit; raised while it runs."""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


@dataclass
class Forecast:
    """What the guest pass measured, and the evaluation's cost it forecasts.

    Attributes:
        guest_probes: probes in the guest pass.
        num_probes: probes one evaluation scores on this process (``None`` when unknown).
        trajectory_seconds: ``{name: seconds}`` of each alteration's guest trajectory.
        guest_seconds: seconds of the whole guest pass.

    Examples:
        >>> forecast = Forecast(guest_probes=2, num_probes=512, trajectory_seconds={"noise": 0.05})
        >>> round(forecast.evaluation_seconds(), 6)
        12.8

    """

    guest_probes: int
    num_probes: int | None
    trajectory_seconds: dict[str, float] = field(default_factory=dict)
    guest_seconds: float = 0.0

    def evaluation_seconds(self) -> float | None:
        """Forecast seconds of one evaluation (every alteration) on ``num_probes`` probes."""
        if self.num_probes is None:
            return None
        return sum(self.trajectory_seconds.values()) * self.num_probes / self.guest_probes

    def describe(self, owner: str) -> str:
        """One line for the log: the forecast, per alteration, and where it comes from."""
        total = self.evaluation_seconds()
        if total is None:
            return f"{owner}: the guest pass took {_duration(self.guest_seconds)} (the probe's length is unknown)."
        scale = self.num_probes / self.guest_probes  # type: ignore[operator]
        parts = ", ".join(f"{name} {_duration(seconds * scale)}" for name, seconds in self.trajectory_seconds.items())
        return (
            f"{owner}: one evaluation of {self.num_probes} probes is forecast at about {_duration(total)} ({parts}),"
            f" from the guest pass of {self.guest_probes} probes through every level"
            f" ({_duration(self.guest_seconds)}): an upper estimate, as full batches run faster per probe than"
            f" two probes at a time; the logged `seconds` give the measured time."
        )


class GuestClock:
    """Times a guest pass stage by stage and refuses one forecast past ``limit_s``.

    Args:
        owner: who checks, for the message (``"RMQMCallback"``, ``"score()"``).
        forecast: what is known of the evaluation (probes); the trajectories' seconds are added here.
        limit_s: the most seconds the whole guest pass may take.
        fix: what to change, for the message.

    Examples:
        >>> clock = GuestClock("score()", Forecast(2, 64), limit_s=60.0)
        >>> with clock.stage("the trajectory of alterations['noise']", total=100) as tick:
        ...     tick(50)
        ...     tick(100)
        >>> clock.spent < 60.0
        True

    """

    def __init__(self, owner: str, forecast: Forecast, *, limit_s: float, fix: str = FEWER_LEVELS) -> None:
        self.owner = owner
        self.forecast = forecast
        self.limit_s = limit_s
        self.fix = fix
        self.spent = 0.0  # seconds of the stages already finished

    @contextmanager
    def stage(self, what: str, total: int) -> Iterator[Callable[[int], None]]:
        """Time a stage of ``total`` levels; yields ``tick(done)``, to call as levels are done."""
        start = time.perf_counter()
        first: tuple[float, int] | None = None

        def tick(done: int) -> None:
            nonlocal first
            now = time.perf_counter()
            if first is None:
                first = (now, done)
                return
            elapsed = now - start
            since, before = now - first[0], done - first[1]
            if before <= 0 or (since < MEASURED_AT_LEAST_S and self.spent + elapsed <= self.limit_s):
                return
            stage = (first[0] - start) + since / before * (total - first[1])
            if self.spent + stage > self.limit_s:
                self._refuse(what, done, total, elapsed, self.spent + stage, stage)

        yield tick
        self.spent += time.perf_counter() - start

    def _refuse(self, what: str, done: int, total: int, elapsed: float, whole: float, stage: float) -> None:
        forecast = self.forecast
        evaluation = ""
        if forecast.num_probes is not None:
            # an evaluation does this stage's work for every probe: at least this much
            at_least = stage * forecast.num_probes / forecast.guest_probes
            evaluation = f"; one evaluation of {forecast.num_probes} probes would take more than {_duration(at_least)}"
        raise GuestPassTooSlow(
            f"{self.owner}: the guest pass of {forecast.guest_probes} probes, sent through every level before"
            f" anything else, is forecast at {_duration(whole)}, over its limit of {_duration(self.limit_s)}"
            f" ({what}: {done:,} of {total:,} levels in {_duration(elapsed)}){evaluation}. {self.fix}"
        )
