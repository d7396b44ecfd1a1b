"""One guest pass of two probes through the real code path, so that a set-up that cannot work fails first.

Before the callback trains (and before ``score`` scores), the first two probes go through exactly
what an evaluation does: the alterations' input contract on the whole probe, one clean forward
pass, each input alteration's output at every level (a tensor of the input's shape, dtype and
device, finite, level 0 the input itself), and a whole trajectory into a scratch metric, with the
probe's labels (``None`` when it has none) where a loss takes them. Whatever fails is raised
again as a ``ValueError`` or ``TypeError`` that names the probe or the alteration, what it got,
and what to change, with the original error chained: the model's own error (raised inside its
forward pass) as the model's, at the levels and input shape it failed on; any other as the
alteration's. The guest pass is timed as it runs (:mod:`rmqm_callback.evaluation._guest_clock`);
what needs no forward pass to refuse is refused before it (:mod:`rmqm_callback.evaluation._set_up_checks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from rmqm_callback.alterations import PGD, Alteration, InputAlteration
from rmqm_callback.alterations.base import EncoderLike
from rmqm_callback.evaluation._guest_clock import Forecast, GuestClock, GuestPassTooSlow
from rmqm_callback.evaluation.encoder import RepresentationError
from rmqm_callback.evaluation.probe import Probe

#: Probes in the guest pass: two, so that batch statistics and the default PGD loss are defined.
GUEST_PROBES = 2


def _describe(inputs: Tensor) -> str:
    return f"shape {tuple(inputs.shape)}, dtype {inputs.dtype}, device {inputs.device}"


def _reraise(error: Exception, message: str) -> None:
    kind = TypeError if isinstance(error, TypeError) else ValueError
    raise kind(f"{message}: {type(error).__name__}: {error}") from error


def _model_hint(probe: Probe, parameters: Tensor | None) -> str:
    hints = []
    if probe.inputs.ndim == 1:
        hints.append(
            f"a 1-D probe of shape {tuple(probe.inputs.shape)} is {len(probe)} scalar inputs: give each probe the"
            " shape of one model input, e.g. inputs.view(N, C, H, W)"
        )
    if parameters is not None and probe.inputs.is_floating_point() and probe.inputs.dtype != parameters.dtype:
        hints.append(f"convert the probe to the parameters' dtype, e.g. probe.to({parameters.dtype})")
    hints.append("pass the probe as the model takes one batch of inputs (shape, dtype)")
    return "; ".join(hints)


def check_input_alteration(
    name: str, alteration: InputAlteration, inputs: Tensor, indices: Tensor, tick: Callable[[int], None] | None = None
) -> None:
    """Raise unless ``alteration.alter`` gives a finite tensor like ``inputs`` at every level (level 0: ``inputs``).

    ``tick(levels_done)`` is called after each level (the guest pass's clock).
    """
    where = f"alterations[{name!r}] = {alteration!r}"
    for level in range(alteration.levels):
        try:
            with torch.inference_mode():
                altered = alteration.alter(inputs, indices, level)
        except Exception as error:
            _reraise(error, f"{where}: alter(inputs, indices, level={level}) failed on inputs of {_describe(inputs)}")
        if not isinstance(altered, Tensor):
            kind = type(altered).__name__
            raise TypeError(f"{where}: alter(inputs, indices, level={level}) returned a {kind}, not a tensor.")
        if altered.shape != inputs.shape or altered.dtype != inputs.dtype or altered.device != inputs.device:
            raise ValueError(
                f"{where}: alter(inputs, indices, level={level}) returned {_describe(altered)} for inputs of"
                f" {_describe(inputs)}; return one altered input per input, of the inputs' shape, dtype and device."
            )
        if not bool(torch.isfinite(altered).all()):
            raise ValueError(f"{where}: alter(inputs, indices, level={level}) returned non-finite (NaN/inf) values.")
        if level == 0 and not torch.equal(altered, inputs):
            raise ValueError(
                f"{where}: level 0 must be the unaltered inputs, but alter(inputs, indices, level=0) changed them;"
                " return `inputs` itself when level == 0."
            )
        if tick is not None:
            tick(level + 1)


class _WatchedEncoder:
    """The encoder of a guest trajectory: says where the model failed, and ticks the clock after each forward pass.

    Levels are counted from the rows embedded so far: a trajectory of ``probes`` probes embeds
    them level after level, several levels per forward pass for input alterations.
    """

    def __init__(self, encoder: EncoderLike, probes: int, tick: Callable[[int], None]) -> None:
        self.encoder = encoder
        self.probes = probes
        self.tick = tick
        self.rows = 0
        self.span: tuple[float, float] | None = None  # from the start of the first forward pass to the end of the last
        self.failure: tuple[str, Tensor, bool] | None = None  # levels, inputs and grad mode of the pass that raised

    def __getattr__(self, name: str) -> Any:  # a custom alteration may read more of the encoder
        return getattr(self.encoder, name)

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.output_and_representation(inputs)[1]

    def seconds(self) -> float:
        """Seconds from the start of the first forward pass to the end of the last."""
        return 0.0 if self.span is None else self.span[1] - self.span[0]

    def output_and_representation(self, inputs: Tensor) -> tuple[Any, Tensor]:
        begun = time.perf_counter() if self.span is None else self.span[0]
        try:
            result = self.encoder.output_and_representation(inputs)
        except Exception:
            first, count = self.rows // self.probes, max(1, inputs.shape[0] // self.probes)
            levels = f"level {first}" if count == 1 else f"levels {first}-{first + count - 1}"
            self.failure = (levels, inputs, torch.is_grad_enabled())
            raise
        self.span = (begun, time.perf_counter())
        self.rows += inputs.shape[0]
        self.tick(self.rows // self.probes)
        return result


def _model_failed(owner: str, where: str, failure: tuple[str, Tensor, bool], probes: int, batch_size: int) -> str:
    """The model's own error on a guest trajectory: where, on what, and what differed from the clean pass."""
    levels, inputs, grad = failure
    differences = []
    if inputs.shape[0] != probes:
        differences.append(
            f"this forward pass had {inputs.shape[0]} inputs: an evaluation stacks several levels of a block into"
            f" one forward pass of up to batch_size={batch_size} inputs"
        )
    if grad:
        differences.append("it ran with autograd on, for the input gradient")
    said = f"; {'; '.join(differences)}" if differences else ""
    return (
        f"{owner}: the model failed on the guest trajectory of {where} at {levels}, in a forward pass of inputs of"
        f" {_describe(inputs)} (the clean forward pass of the same {probes} probes worked{said})"
    )


def _alteration_failed(owner: str, where: str, alteration: Alteration, first: Probe) -> str:
    """The message for an alteration's error on a guest trajectory, with the labels it saw where it takes any."""
    message = f"{owner}: {where} failed on a guest trajectory of {len(first)} probes ({_describe(first.inputs)}"
    default_loss = isinstance(alteration, PGD) and alteration.loss is None
    if isinstance(alteration, InputAlteration) or default_loss:  # alter() sees no labels, nor does PGD's default loss
        return f"{message})"
    if first.labels is None:
        return f"{message}; no labels: a loss that needs labels needs a probe with labels, e.g. probe=(inputs, labels))"
    return f"{message}; labels of shape {tuple(first.labels.shape)})"


def guest_pass(
    owner: str,
    probe: Probe,
    alterations: Mapping[str, Alteration],
    *,
    prepare: Callable[[Tensor], Tensor],
    forward: Callable[[Tensor], object],
    trajectory: Callable[[Probe, Alteration, EncoderLike], object],
    encoder: EncoderLike,
    parameters: Tensor | None,
    batch_size: int,
    evaluated: int | None,
    time_limit_s: float,
) -> Forecast:
    """Run the first :data:`GUEST_PROBES` probes through every step of an evaluation; raise what cannot work.

    Args:
        owner: who checks, for the messages (``"RMQMCallback"``, ``"score()"``).
        probe: the whole probe (its inputs are checked against every alteration's contract).
        alterations: ``{name: alteration}``.
        prepare: puts probe inputs where and how the model gets them (device, precision).
        forward: one clean forward pass of prepared inputs, as a guest (modes, RNG, no grad).
        trajectory: scores a probe with an alteration through the given encoder, as an evaluation
            does (into a scratch metric).
        encoder: the encoder the trajectories use (watched, to tell the model's errors apart).
        parameters: a parameter of the model (for its dtype in hints), or ``None``.
        batch_size: the evaluation's ``batch_size`` (for the messages).
        evaluated: the probes one evaluation scores on this process (``None`` when unknown).
        time_limit_s: the most seconds the guest pass may take (forecast while it runs).

    Returns:
        What it measured, and the cost it forecasts for one evaluation.

    Raises:
        GuestPassTooSlow: the guest pass is forecast past ``time_limit_s``, with the forecast and the fix.

    """
    start = time.perf_counter()
    first = Probe(probe.inputs[:GUEST_PROBES], None if probe.labels is None else probe.labels[:GUEST_PROBES])
    indices = torch.arange(len(first))
    clock = GuestClock(owner, Forecast(len(first), evaluated), limit_s=time_limit_s)
    for alteration in alterations.values():
        alteration.check_inputs(probe.inputs, torch.arange(len(probe)))
    try:
        inputs = prepare(first.inputs)
        forward(inputs)
    except RepresentationError:  # the output, not the probe, is at fault; the message says what to pass
        raise
    except Exception as error:
        _reraise(
            error,
            f"{owner}: the model failed on a guest forward pass of {len(first)} probes ({_describe(first.inputs)};"
            f" {_model_hint(probe, parameters)})",
        )
    for name, alteration in alterations.items():
        where = f"alterations[{name!r}] = {alteration!r}"
        altering = 0.0  # seconds of altering the probes at every level, for an input alteration
        if isinstance(alteration, InputAlteration):
            started = time.perf_counter()
            with clock.stage(f"checking the outputs of {where}", alteration.levels) as tick:
                check_input_alteration(name, alteration, inputs, indices, tick)
            altering = time.perf_counter() - started
        with clock.stage(f"the guest trajectory of {where}", alteration.levels) as tick:
            watched = _WatchedEncoder(encoder, len(first), tick)
            try:
                trajectory(first, alteration, watched)
            except (RepresentationError, GuestPassTooSlow):
                raise
            except Exception as error:
                if watched.failure is not None:
                    _reraise(error, _model_failed(owner, where, watched.failure, len(first), batch_size))
                _reraise(error, _alteration_failed(owner, where, alteration, first))
        # what grows with the probes: the forward (and PGD's backward) passes from the first to the last, and
        # the altering; not the set-up before them or the metric's compute after them (once per evaluation)
        clock.forecast.trajectory_seconds[name] = watched.seconds() + altering
    clock.forecast.guest_seconds = time.perf_counter() - start
    return clock.forecast
