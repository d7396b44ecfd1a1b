"""Projected gradient descent (Madry et al., 2018; paper appendix A), one run keeping every iterate."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rmqm_callback.alterations._inputs import check_alteration_inputs, check_clip
from rmqm_callback.alterations._recorded import callable_spec, rebuild_callable
from rmqm_callback.alterations.base import Alteration, EncoderLike, ProbeBatch
from rmqm_callback.functional._checks import check_number

#: ``loss(output, clean, labels) -> Tensor``: model output for the attacked inputs, the clean
#: ``(n, d)`` representations, the probe labels (or ``None``); a scalar or per-probe losses.
AttackLoss = Callable[[Any, Tensor, "Tensor | None"], Tensor]


def contrastive_loss(representation: Tensor, clean: Tensor, temperature: float = 0.1) -> Tensor:
    """NT-Xent-style loss of attacked representations against the clean ones of their batch.

    Probe ``k``'s positive is its own clean representation, its negatives the other probes' clean
    representations; cosine similarities over ``temperature``. Raising it pushes each attacked
    representation away from its own clean one. Summed over the batch.
    """
    logits = F.normalize(representation, dim=1) @ F.normalize(clean, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device), reduction="sum")


class PGD(Alteration):
    r"""Iterated signed-gradient steps that raise a loss, kept in an L-inf ball and the input range.

    Level 0 is the input; level :math:`j` is
    :math:`x_j = [\Pi_{\|x - x_0\|_\infty \le r}(x_{j-1} + \alpha\,\mathrm{sign}\nabla_x
    \mathcal{L}(x_{j-1}))]_{clip}`. One run of ``levels - 1`` steps keeps every iterate; it equals
    re-running the attack from scratch for every level (as the released pipeline did), for
    ``levels - 1`` instead of ``levels (levels - 1) / 2`` gradient steps. Gradients are taken
    with respect to the input only (``torch.autograd.grad``): the model's ``.grad`` stay untouched.

    The default loss is label-free: :func:`contrastive_loss` between the attacked representation
    and the clean representations of the probes in the same batch, so the first gradient is not 0.
    The result therefore depends on which probes share a batch: ``score`` and the callback batch
    probes ``[kB, (k+1)B)`` for ``batch_size`` B whatever the number of processes, so keep
    ``batch_size`` fixed when comparing, and avoid batches of a single probe (which the default
    loss cannot move; a warning says so). A ``loss`` callable ``loss(output, clean, labels)`` gets
    the model's output for the attacked inputs, the clean representations and the probe labels
    (``None`` when the probe has none), for example cross-entropy for a supervised model.

    Contract: floating inputs in ``clip``; returns iterates of the same shape inside ``clip`` and
    within ``radius`` of the input.

    Args:
        levels: number of levels including the input (the paper: 30).
        step_size: :math:`\alpha` (the paper: 2/255).
        radius: L-inf radius :math:`r` of the ball around the input (the released pipeline: 0.3).
        clip: ``(lo, hi)`` input range, or ``None``.
        loss: ``loss(output, clean, labels)``; ``None`` for the label-free contrastive loss.
        temperature: temperature of the default contrastive loss.

    Raises:
        TypeError / ValueError: ``levels < 3``, ``step_size <= 0`` or ``radius <= 0`` (the attack
            would not move), ``clip`` with ``lo >= hi``, a ``loss`` that is not callable.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from rmqm_callback.evaluation.encoder import Encoder
        >>> from rmqm_callback.evaluation.probe import Probe
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))
        >>> attack = PGD(levels=4, step_size=0.05, radius=0.1)
        >>> batch = next(Probe(torch.rand(6, 1, 4, 4)).blocks(6))
        >>> iterates = [x for x, _ in attack.iterates(batch, Encoder(model))]
        >>> len(iterates), round(float((iterates[-1] - iterates[0]).abs().max()), 4)
        (4, 0.1)

    """

    name = "pgd"

    def __init__(
        self,
        levels: int = 30,
        step_size: float = 2 / 255,
        radius: float = 0.3,
        clip: tuple[float, float] | None = (0.0, 1.0),
        loss: AttackLoss | None = None,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(levels)
        # 0 for either would move nothing: every level would be the input
        self.step_size = check_number("step_size", step_size, positive=True)
        self.radius = check_number("radius", radius, positive=True)
        self.clip = check_clip(clip)
        if loss is not None and not callable(loss):
            raise TypeError(f"`loss` must be None or a callable (output, clean, labels), got {loss!r}.")
        self.loss = loss
        self.temperature = check_number("temperature", temperature, positive=True)

    def _settings(self) -> dict[str, object]:
        if self.loss is None:
            loss = f"contrastive(temperature={self.temperature})"
        else:
            named = getattr(self.loss, "__qualname__", type(self.loss).__qualname__)
            loss = f"{getattr(self.loss, '__module__', '')}.{named}"
        settings = {"levels": self.levels, "step_size": self.step_size, "radius": self.radius, "clip": self.clip}
        return {**settings, "loss": loss}

    def init_args(self) -> dict[str, Any]:
        """The ``__init__`` arguments; ``loss`` as ``"module:qualname"`` (unrecorded when it cannot be imported)."""
        return {
            "levels": self.levels,
            "step_size": self.step_size,
            "radius": self.radius,
            "clip": self.clip,
            "loss": callable_spec(self.loss),
            "temperature": self.temperature,
        }

    @classmethod
    def from_init_args(cls, init_args: dict[str, Any]) -> PGD:
        """Build a PGD from :meth:`init_args`, importing its ``loss`` back."""
        return cls(**{**init_args, "loss": rebuild_callable(init_args.get("loss"), "loss")})

    def _loss(self, output: Any, representation: Tensor, clean: Tensor, labels: Tensor | None) -> Tensor:
        if self.loss is None:
            return contrastive_loss(representation, clean, self.temperature)
        if output is None:
            raise ValueError(
                "PGD(loss=...) gets the model's output, but the `embed` callable did not call the model"
                " (model(inputs)); use embed=<submodule name>, or call the model in the callable."
            )
        return self.loss(output, clean, labels).sum()

    def check_inputs(self, inputs: Tensor, indices: Tensor) -> None:
        """Inputs must be finite, floating and, when clipping, inside ``clip``."""
        check_alteration_inputs(inputs, self.clip, "PGD", indices)

    def iterates(self, batch: ProbeBatch, encoder: EncoderLike) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x_j, representation_j)`` for ``j = 0..L-1`` (both detached)."""
        self.check_inputs(batch.inputs, batch.indices)
        if self.loss is None and batch.inputs.shape[0] == 1:
            warnings.warn(
                f"PGD's default contrastive loss needs at least 2 probes per batch; probe"
                f" {int(batch.indices[0])} is alone in its batch, gets a zero gradient and is not moved.",
                UserWarning,
                stacklevel=2,
            )
        # Lightning evaluates under inference mode; the attack needs autograd on normal tensors.
        # Grad modes are set around each step, never around a yield (they would leak to the caller).
        with torch.inference_mode(False):
            original = batch.inputs.clone()
            labels = None if batch.labels is None else batch.labels.clone()
        current, clean = original, None
        for _ in range(self.levels - 1):
            representation, step = self._step(current, original, clean, labels, encoder)
            clean = representation if clean is None else clean
            yield current, representation
            current = step
        with torch.inference_mode(False), torch.no_grad():
            final = encoder(current).detach()
        yield current, final

    def _step(
        self, current: Tensor, original: Tensor, clean: Tensor | None, labels: Tensor | None, encoder: EncoderLike
    ) -> tuple[Tensor, Tensor]:
        """Representation of ``current`` and the next iterate (both detached)."""
        with torch.inference_mode(False), torch.enable_grad():
            attacked = current.detach().requires_grad_(True)
            output, representation = encoder.output_and_representation(attacked)
            representation_value = representation.detach()
            clean = representation_value if clean is None else clean
            loss = self._loss(output, representation, clean, labels)
            (gradient,) = torch.autograd.grad(loss, attacked)
            with torch.no_grad():
                step = current + self.step_size * gradient.sign()
                step = original + (step - original).clamp(-self.radius, self.radius)
                if self.clip is not None:
                    step = step.clamp(*self.clip)
        return representation_value, step.detach()

    def trajectory(self, batch: ProbeBatch, encoder: EncoderLike, max_batch_size: int) -> Iterator[Tensor]:
        """Representations of the iterates; one forward and input-gradient pass per step."""
        for _, representation in self.iterates(batch, encoder):
            yield representation
