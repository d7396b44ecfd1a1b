"""The interface every alteration implements.

An alteration turns a batch of probes into a *trajectory*: the representations of ``levels``
successively stronger alterations, level 0 being the unaltered input. Two kinds exist:

* :class:`InputAlteration`, which alters inputs without looking at the model (white noise,
  blur, masking...). A subclass implements :meth:`InputAlteration.alter` only; the base class
  batches several levels into one forward pass and runs them under ``torch.inference_mode``.
* :class:`Alteration` itself, for alterations that need the model (such as :class:`PGD`): a
  subclass implements :meth:`Alteration.trajectory` and yields one representation per level.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from rmqm_callback.alterations._ahead import idle_cores, made_ahead
from rmqm_callback.functional._checks import check_int


@dataclass(frozen=True)
class ProbeBatch:
    """Probes ``indices`` (global, int64, CPU), their ``inputs`` and ``labels`` (or ``None``)."""

    indices: Tensor
    inputs: Tensor
    labels: Tensor | None

    def to(self, device: torch.device | str) -> ProbeBatch:
        """Move inputs and labels to ``device`` (indices stay on the CPU)."""
        labels = None if self.labels is None else self.labels.to(device, non_blocking=True)
        return ProbeBatch(self.indices, self.inputs.to(device, non_blocking=True), labels)


class EncoderLike(Protocol):
    """What an alteration sees of the model: inputs to ``(n, d)`` representations.

    :class:`rmqm_callback.evaluation.encoder.Encoder` is the implementation the package passes
    (preprocessing and the ``embed`` rule included).
    """

    def __call__(self, inputs: Tensor) -> Tensor:
        """The ``(n, d)`` representation of ``inputs``."""

    def output_and_representation(self, inputs: Tensor) -> tuple[Any, Tensor]:
        """The model's raw output for ``inputs`` (``None`` when not known) and their representation."""


class Alteration(ABC):
    """Successively stronger alterations of probe inputs.

    Attributes:
        name: default name under which the callback logs this alteration's results.
        levels: number of levels ``L`` including the unaltered level 0 (``L >= 3``).

    """

    name: str = "alteration"

    def __init__(self, levels: int) -> None:
        self.levels = check_int("levels", levels, minimum=3)

    def strengths(self) -> Tensor:
        """Alteration strength of each level ``j = 0..L-1`` (the x axis of the curves)."""
        return torch.arange(self.levels, dtype=torch.float64)

    @property
    def min_probes_per_batch(self) -> int:
        """The fewest probes a batch must hold for this alteration to work (1; PGD's default loss: 2).

        The evaluation scores blocks of ``batch_size`` consecutive probes; a set-up with a smaller
        batch (a last block of ``N % batch_size`` probes) is refused before anything runs.
        """
        return 1

    @abstractmethod
    def trajectory(self, batch: ProbeBatch, encoder: EncoderLike, max_batch_size: int) -> Iterator[Tensor]:
        """Yield the ``(n, d)`` representation of every level ``j = 0..L-1`` of ``batch``, in order.

        Args:
            batch: probes (global ``indices``, ``inputs``, optional ``labels``) on the model's device.
            encoder: maps inputs to ``(n, d)`` representations (preprocessing included).
            max_batch_size: the most inputs to send through the model at once.

        """

    def check_inputs(self, inputs: Tensor, indices: Tensor) -> None:
        """Raise if ``inputs`` (probes ``indices``) are outside this alteration's contract (once per batch).

        Accepts everything unless a subclass states a contract.
        """
        return None

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._settings().items())
        return f"{type(self).__name__}({settings})"

    def _settings(self) -> dict[str, object]:
        """The configuration that identifies this alteration (used in ``repr`` and state keys)."""
        return {"levels": self.levels}

    def init_args(self) -> dict[str, Any]:
        """The ``__init__`` arguments that rebuild this alteration (recorded in checkpoints for ``rmqm score``).

        By default the settings that identify it (``levels``); a subclass whose ``__init__``
        takes other arguments overrides this, or :meth:`_settings`.
        """
        return dict(self._settings())

    @classmethod
    def from_init_args(cls, init_args: dict[str, Any]) -> Alteration:
        """Build an alteration from what :meth:`init_args` returned."""
        return cls(**init_args)


class InputAlteration(Alteration):
    """An alteration of inputs alone; subclasses implement :meth:`alter`.

    Attributes:
        pure: ``alter`` is a function of its arguments alone (no global random number stream, no
            shared mutable state), so on a CPU with a core that torch's intra-op threads leave
            idle the next levels are altered on a helper thread while the model embeds the current
            ones (not for a block whose levels are all kept already, see :meth:`_all_levels_kept`).
            Same numbers either way. ``False`` by default; :class:`GaussianNoise` sets it.
            Set it to ``False`` on an instance to keep its alterations on the caller's thread.

    Examples:
        >>> import torch
        >>> class Dim(InputAlteration):
        ...     '''Darken images: level j multiplies pixels by 1 - j / levels.'''
        ...     name = "dim"
        ...     def alter(self, inputs, indices, level):
        ...         return inputs * (1 - level / self.levels)
        >>> Dim(levels=4).alter(torch.ones(2, 3), torch.arange(2), level=2)
        tensor([[0.5000, 0.5000, 0.5000],
                [0.5000, 0.5000, 0.5000]])

    """

    pure: bool = False

    @abstractmethod
    def alter(self, inputs: Tensor, indices: Tensor, level: int) -> Tensor:
        """Return ``inputs`` altered to ``level`` (``level`` 0 must return them unchanged).

        Args:
            inputs: ``(n, ...)`` probe inputs.
            indices: ``(n,)`` global probe indices (to key random alterations by probe).
            level: ``0..levels-1``.

        """

    def trajectory(self, batch: ProbeBatch, encoder: EncoderLike, max_batch_size: int) -> Iterator[Tensor]:
        """Embed the levels of ``batch``, several levels per forward pass, under inference mode."""
        self.check_inputs(batch.inputs, batch.indices)
        n = batch.inputs.shape[0]
        group = max(1, max_batch_size // max(n, 1))
        groups = [range(first, min(first + group, self.levels)) for first in range(0, self.levels, group)]

        def altered_group(levels: range) -> Tensor:
            # grad mode is thread-local and set around the work, never around a yield (it would leak)
            with torch.inference_mode():
                parts = [self.alter(batch.inputs, batch.indices, level) for level in levels]
                return parts[0] if len(parts) == 1 else torch.cat(parts)

        if self._alters_ahead(batch.inputs.device) and len(groups) > 1 and not self._all_levels_kept(batch):
            # autocast is thread-local too: the helper alters under the caller's autocast state
            autocast = torch.autocast(
                "cpu", dtype=torch.get_autocast_dtype("cpu"), enabled=torch.is_autocast_enabled("cpu")
            )

            def altered_group_ahead(levels: range) -> Tensor:
                with autocast:
                    return altered_group(levels)

            altered_groups: Generator[Tensor, None, None] = made_ahead(altered_group_ahead, groups)
        else:
            altered_groups = (altered_group(levels) for levels in groups)
        with closing(altered_groups):  # an error or an early stop ends the helper thread now, not at gc
            for altered in altered_groups:
                with torch.inference_mode():
                    representation = encoder(altered)
                if representation.shape[0] == n:  # one level in this pass
                    yield representation
                else:
                    yield from representation.split(n)

    def _all_levels_kept(self, batch: ProbeBatch) -> bool:
        """Whether every level of ``batch`` is at hand already (kept from an earlier evaluation).

        Such a block is altered on the caller's thread: there is no work for a helper to hide, only
        its hand-over per forward pass to pay. ``False`` by default; :class:`GaussianNoise` asks its cache.
        """
        return False

    def _alters_ahead(self, device: torch.device) -> bool:
        """Whether to alter the next levels on a helper thread (see :attr:`pure`).

        CPU only: on an accelerator the alteration's kernels already run asynchronously, and a
        helper thread would not share the caller's current stream.
        """
        return self.pure and device.type == "cpu" and idle_cores() > 0
