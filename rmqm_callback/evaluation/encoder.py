"""Turn a model into an encoder of probe inputs: preprocessing, the ``embed`` rule, shape checks.

The ``embed`` rule picks the representation that RMQM measures:

* ``None``: the model's output (its first element when the model returns a tuple or list);
* a string: the output of the submodule of that name (read with a forward hook);
* a callable ``embed(model, inputs) -> Tensor``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

EmbedRule = None | str | Callable[[nn.Module, Tensor], Any]


class RepresentationError(ValueError):
    """The model (or the ``embed`` rule) gave something that is not a ``(batch, d)`` representation."""


def _first_tensor(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) and len(value) > 0 else value


def as_representation(value: Any, batch_size: int, source: str) -> Tensor:
    """Return ``value`` as a ``(batch, d)`` floating tensor, flattening trailing dimensions.

    Raises:
        RepresentationError: ``value`` is not a floating tensor with ``batch_size`` rows and >= 1 feature.

    """
    value = _first_tensor(value)
    if not isinstance(value, Tensor):
        raise RepresentationError(
            f"{source} gave a {type(value).__name__}, which is not a tensor: RMQM needs a (batch, d)"
            " representation. Pass `embed=` a submodule name or a callable (model, inputs) -> Tensor."
        )
    shape = value.shape
    if not value.is_floating_point() or len(shape) < 2 or shape[0] != batch_size or math.prod(shape[1:]) == 0:
        raise RepresentationError(
            f"{source} gave a tensor of shape {tuple(shape)} and dtype {value.dtype}; RMQM needs a"
            f" floating (batch={batch_size}, d) representation (trailing dimensions are flattened)."
        )
    return value if len(shape) == 2 else value.flatten(1)


def check_embed_and_preprocess(embed: Any, preprocess: Any) -> None:
    """Raise ``TypeError`` unless ``embed`` is None/str/callable and ``preprocess`` None/callable."""
    if embed is not None and not isinstance(embed, str) and not callable(embed):
        raise TypeError(f"`embed` must be None, a submodule name or a callable, got {embed!r}.")
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"`preprocess` must be None or a callable, got {preprocess!r}.")


def _with_output_of(module: nn.Module, run: Callable[[], Any]) -> tuple[list[Any], Any]:
    """Call ``run()`` while a forward hook records every output of ``module``; return both."""
    captured: list[Any] = []
    handle = module.register_forward_hook(lambda _module, _args, out: captured.append(out))
    try:
        result = run()
    finally:
        handle.remove()
    return captured, result


class Encoder:
    """Preprocess inputs, run the model and pick the representation by the ``embed`` rule.

    Args:
        model: the encoder network (left on its device; not moved or copied).
        embed: ``None``, a submodule name, or a callable ``(model, inputs) -> Tensor``.
        preprocess: callable applied to (altered) inputs before the model, for example the
            model's mean/std normalisation; ``None`` for none.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``embed`` or ``preprocess`` has a wrong type.
        ValueError: ``embed`` names no submodule of ``model``.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> Encoder(model, embed="1")(torch.zeros(5, 2, 2)).shape
        torch.Size([5, 3])

    """

    def __init__(self, model: nn.Module, embed: EmbedRule = None, preprocess: Callable | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        check_embed_and_preprocess(embed, preprocess)
        self.model = model
        self.embed = embed
        self.preprocess = preprocess
        self._submodule: nn.Module | None = None
        if isinstance(embed, str):
            names = [name for name, _ in model.named_modules() if name]
            if embed not in names:
                shown = ", ".join(repr(name) for name in names[:12])
                raise ValueError(f"`embed`={embed!r} names no submodule of the model; it has: {shown}.")
            self._submodule = model.get_submodule(embed)

    def output_and_representation(self, inputs: Tensor) -> tuple[Any, Tensor]:
        """Return the model's raw output and the ``(batch, d)`` representation for ``inputs``.

        With a callable ``embed``, the output is the model's own output if the callable called
        the model (``model(inputs)``), else ``None``.
        """
        model_inputs = self.preprocess(inputs) if self.preprocess is not None else inputs
        embed = self.embed
        if callable(embed) and not isinstance(embed, str):
            outputs, representation = _with_output_of(self.model, lambda: embed(self.model, model_inputs))
            output = outputs[-1] if outputs else None
            return output, as_representation(representation, inputs.shape[0], "`embed` callable")
        if self._submodule is None:
            output = self.model(model_inputs)
            return output, as_representation(output, inputs.shape[0], "The model's output")
        captured, output = _with_output_of(self._submodule, lambda: self.model(model_inputs))
        if not captured:
            raise RepresentationError(f"`embed`={self.embed!r}: that submodule was not called by the model's forward.")
        return output, as_representation(captured[-1], inputs.shape[0], f"Submodule {self.embed!r}")

    def __call__(self, inputs: Tensor) -> Tensor:
        """Return the ``(batch, d)`` representation of ``inputs``."""
        return self.output_and_representation(inputs)[1]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own mode afterwards, also on error."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")
