"""Altered inputs kept across evaluations, under a memory budget (what :class:`GaussianNoise` reuses).

The noise of probe ``i`` at level ``j`` never changes within a run, so the altered input of a
block of probes at a level is the same at every evaluation as long as the block's inputs are.
:class:`AlteredCache` keeps such tensors, keyed by the block (first probe index, number of
probes) and the level, until their bytes reach the budget; what does not fit is not kept (the
first ones made stay, which suits the evaluation's cyclic order: an LRU would evict every entry
before its reuse), so memory stays flat in the number of probes and levels beyond the budget.

A hit is exact by construction: every block stores a copy of its clean inputs and is dropped
when a caller's inputs differ (checked once per inputs tensor object, not per level), every
cached tensor's version counter is recorded and an entry modified in place (a model that writes
into its input) is dropped, and a change of device, dtype, input shape or alteration settings
empties the cache.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch
from torch import Tensor


def _storage_bytes(tensor: Tensor) -> int:
    return tensor.untyped_storage().nbytes()


@dataclass
class _Block:
    """One block's clean inputs, the last inputs object found equal to them, and its altered levels."""

    clean: Tensor
    checked: Callable[[], Tensor | None] = lambda: None
    checked_version: int = -1
    levels: dict[int, tuple[Tensor, int]] = field(default_factory=dict)

    def unwritten(self, level: int) -> bool:
        """Whether ``level`` is kept and nobody wrote into it since (its version counter is unchanged)."""
        entry = self.levels.get(level)
        return entry is not None and entry[0]._version == entry[1]


def tensor_version(tensor: Tensor) -> int:
    """The version counter of ``tensor``; -1 for an inference tensor (it keeps none)."""
    return -1 if tensor.is_inference() else tensor._version


class AlteredCache:
    """Altered inputs by ``(first index, count, level)``, at most ``budget_bytes`` of them (thread-safe).

    Examples:
        >>> import torch
        >>> cache = AlteredCache(budget_bytes=2**20)
        >>> x = torch.zeros(4, 3)
        >>> cache.get(x, first=0, level=1, context="noise") is None
        True
        >>> cache.get_or_make(x, 0, 1, "noise", lambda: x + 1).tolist() == cache.get(x, 0, 1, "noise").tolist()
        True
        >>> cache.hits, cache.misses, cache.nbytes > 0
        (1, 2, True)

    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = int(budget_bytes)
        self.nbytes = 0
        self.hits = self.misses = 0
        self._blocks: dict[tuple[int, int], _Block] = {}
        self._context: Hashable = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Drop everything (the counters of hits and misses too)."""
        with self._lock:
            self._clear()
            self.hits = self.misses = 0

    def _clear(self) -> None:
        self._blocks.clear()
        self.nbytes = 0

    def _block(self, inputs: Tensor, first: int, context: Hashable) -> _Block | None:
        """The block of ``inputs`` if its clean inputs equal them, after dropping a stale one."""
        full_context = (context, inputs.device, inputs.dtype, tuple(inputs.shape[1:]))
        if full_context != self._context:
            self._clear()
            self._context = full_context
            return None
        key = (first, inputs.shape[0])
        block = self._blocks.get(key)
        if block is None:
            return None
        if block.checked() is inputs and block.checked_version == tensor_version(inputs) != -1:
            return block
        if torch.equal(block.clean, inputs):
            block.checked, block.checked_version = weakref.ref(inputs), tensor_version(inputs)
            return block
        self._drop(key)  # the probe changed
        return None

    def _drop(self, key: tuple[int, int]) -> None:
        block = self._blocks.pop(key)
        self.nbytes -= _storage_bytes(block.clean) + sum(_storage_bytes(t) for t, _ in block.levels.values())

    def get(self, inputs: Tensor, first: int, level: int, context: Hashable) -> Tensor | None:
        """The cached level ``level`` of ``inputs`` (probes ``first, first + 1, ...``), or ``None``."""
        with self._lock:
            block = self._block(inputs, first, context)
            if block is not None and level in block.levels:
                tensor, _ = block.levels[level]
                if block.unwritten(level):
                    self.hits += 1
                    return tensor
                del block.levels[level]  # written into by its last user: not what alter() makes
                self.nbytes -= _storage_bytes(tensor)
            self.misses += 1
            return None

    def holds(self, inputs: Tensor, first: int, levels: range, context: Hashable) -> bool:
        """Whether every level in ``levels`` of ``inputs`` (probes ``first, ...``) is kept and unmodified.

        Counts neither hit nor miss; a stale block (its inputs changed) is dropped as :meth:`get`
        would drop it.
        """
        with self._lock:
            block = self._block(inputs, first, context)
            if block is None:
                return False
            return all(block.unwritten(level) for level in levels)

    def get_or_make(
        self, inputs: Tensor, first: int, level: int, context: Hashable, make: Callable[[], Tensor]
    ) -> Tensor:
        """The cached level, or ``make()``'s result, kept when it fits the budget.

        ``make`` runs outside inference mode when its result is kept, so that the kept tensor has
        a version counter (an inference tensor has none).
        """
        found = self.get(inputs, first, level, context)
        if found is not None:
            return found
        with self._lock:
            block = self._blocks.get((first, inputs.shape[0]))
            extra = 0 if block is not None else inputs.numel() * inputs.element_size()
            fits = self.nbytes + extra + inputs.numel() * inputs.element_size() <= self.budget_bytes
        if not fits:
            return make()
        with torch.inference_mode(False), torch.no_grad():
            made = make()
            with self._lock:
                if block is None:
                    block = _Block(inputs.detach().clone())
                    self._blocks[(first, inputs.shape[0])] = block
                    self.nbytes += _storage_bytes(block.clean)
                if level not in block.levels and self.nbytes + _storage_bytes(made) <= self.budget_bytes:
                    block.levels[level] = (made, made._version)
                    self.nbytes += _storage_bytes(made)
        return made
