"""One guest pass of two probes through the real code path, so that a set-up that cannot work fails first.

Before the callback trains (and before ``score`` scores), the first two probes go through exactly
what an evaluation does: the alterations' input contract on the whole probe, one clean forward
pass, each input alteration's output at every level (a tensor of the input's shape, dtype and
device, finite, level 0 the input itself), and a whole trajectory into a scratch metric, with the
probe's labels (``None`` when it has none) where a loss takes them. Whatever fails is raised
again as a ``ValueError`` or ``TypeError`` that names the probe or the alteration, what it got,
and what to change, with the original error chained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from rmqm_callback.alterations import Alteration, InputAlteration
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


def check_input_alteration(name: str, alteration: InputAlteration, inputs: Tensor, indices: Tensor) -> None:
    """Raise unless ``alteration.alter`` gives a finite tensor like ``inputs`` at every level (level 0: ``inputs``)."""
    where = f"alterations[{name!r}] = {alteration!r}"
    for level in range(alteration.levels):
        with torch.inference_mode():
            altered = alteration.alter(inputs, indices, level)
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


def guest_pass(
    owner: str,
    probe: Probe,
    alterations: Mapping[str, Alteration],
    *,
    prepare: Callable[[Tensor], Tensor],
    forward: Callable[[Tensor], object],
    trajectory: Callable[[Probe, Alteration], object],
    parameters: Tensor | None,
) -> None:
    """Run the first :data:`GUEST_PROBES` probes through every step of an evaluation; raise what cannot work.

    Args:
        owner: who checks, for the messages (``"RMQMCallback"``, ``"score()"``).
        probe: the whole probe (its inputs are checked against every alteration's contract).
        alterations: ``{name: alteration}``.
        prepare: puts probe inputs where and how the model gets them (device, precision).
        forward: one clean forward pass of prepared inputs, as a guest (modes, RNG, no grad).
        trajectory: scores a probe with an alteration as an evaluation does (into a scratch metric).
        parameters: a parameter of the model (for its dtype in hints), or ``None``.

    """
    first = Probe(probe.inputs[:GUEST_PROBES], None if probe.labels is None else probe.labels[:GUEST_PROBES])
    indices = torch.arange(len(first))
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
        if isinstance(alteration, InputAlteration):
            check_input_alteration(name, alteration, inputs, indices)
        try:
            trajectory(first, alteration)
        except RepresentationError:
            raise
        except Exception as error:
            if first.labels is None:
                labels = "no labels: a loss that needs labels needs a probe with labels, e.g. probe=(inputs, labels)"
            else:
                labels = f"labels of shape {tuple(first.labels.shape)}"
            _reraise(
                error,
                f"{owner}: alterations[{name!r}] = {alteration!r} failed on a guest trajectory of {len(first)} probes"
                f" ({_describe(first.inputs)}; {labels})",
            )
