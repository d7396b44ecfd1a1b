"""White-noise injection (paper appendix A): ``x_j = clip(x + a_j)``, ``a_j ~ N(0, eps_j^2)``."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import Tensor

from rmqm_callback.alterations._cache import AlteredCache, tensor_version
from rmqm_callback.alterations._inputs import check_alteration_inputs, check_clip
from rmqm_callback.alterations.base import InputAlteration, ProbeBatch
from rmqm_callback.functional._checks import check_int, check_number

#: Noise is drawn for blocks of this many consecutive probes, one generator seed per block and level.
NOISE_BLOCK = 16
_MASK64 = (1 << 64) - 1
#: Default memory for altered inputs kept across evaluations (MiB): 512 probes x 100 levels of 1x28x28 fit.
DEFAULT_CACHE_MIB = 256.0


def _first_of_range(indices: Tensor) -> int | None:
    """``indices[0]`` if ``indices`` are consecutive increasing integers, else ``None``."""
    if indices.dim() != 1:
        return None
    indices = indices.to("cpu", torch.int64)
    first = int(indices[0])
    if not bool((indices == torch.arange(first, first + indices.shape[0])).all()):
        return None
    return first


def _no_range() -> tuple[weakref.ref | Callable[[], None], int, int | None]:
    """The remembered ``(indices, version, first)`` before any indices are seen."""
    return (lambda: None, -1, None)


def _mix(*keys: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser applied to each key in turn)."""
    state = 0x9E3779B97F4A7C15
    for key in keys:
        state = (state ^ (key & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 31
    return state >> 1


class GaussianNoise(InputAlteration):
    r"""Fresh white noise of growing standard deviation at every level, keyed by probe and level.

    Level :math:`j` of probe :math:`x_i` is :math:`[x_i + \epsilon_j z_{ij}]_{clip}` with
    :math:`\epsilon_j` = ``linspace(0, max_std, levels)[j]`` and :math:`z_{ij}` standard normal;
    level 0 is :math:`x_i` itself. :math:`z_{ij}` depends only on ``(seed, i, j)`` (and the
    device type): not on batch or chunk size, the number of processes or the epoch, so every
    evaluation of a run sees the same alterations and a change of RMQM is the model's.

    Contract: inputs are floating tensors in the raw range ``clip`` (``[0, 1]`` pixels by
    default); model normalisation belongs in ``preprocess``. Returns tensors of the same shape
    and dtype, inside ``clip``.

    Args:
        levels: number of levels including the unaltered one (the paper: 100).
        max_std: standard deviation at the last level (the paper: 1.0).
        clip: ``(lo, hi)`` input range to clip to, or ``None`` not to clip (nor check the range).
        seed: seed of the noise.
        cache_mib: memory (MiB) for altered inputs kept across evaluations, on the inputs' device.
            The noise never changes within a run, so a block of probes met again (the next
            evaluation of the same probe) reuses its altered inputs instead of drawing the noise
            again: the same numbers, bit for bit, without the cost of drawing them. The first
            blocks and levels made are kept until the budget is spent; the rest are drawn anew at
            every evaluation, so memory stays flat in the number of probes and levels. A block
            whose inputs changed, a new device, dtype or input shape, or a kept input that the
            model modified in place, is made anew. ``0`` keeps nothing. A :func:`~rmqm_callback.score`
            call without an alteration makes a fresh one (nothing to reuse): pass the same
            instance to reuse it across calls; the callback keeps its instances across epochs.

    Raises:
        TypeError / ValueError: ``levels < 3``, ``max_std <= 0`` (no noise: every level would be the
            input), ``clip`` with ``lo >= hi``, ``cache_mib < 0``.

    Examples:
        >>> import torch
        >>> noise = GaussianNoise(levels=5, max_std=0.4)
        >>> noise.strengths()
        tensor([0.0000, 0.1000, 0.2000, 0.3000, 0.4000], dtype=torch.float64)
        >>> x = torch.full((3, 4), 0.5)
        >>> bool((noise.alter(x, torch.arange(3), level=0) == x).all())
        True
        >>> bool(torch.equal(noise.alter(x, torch.arange(3), 4)[2], noise.alter(x[2:], torch.tensor([2]), 4)[0]))
        True
        >>> kept = noise.alter(x, torch.arange(3), 4)  # made again? no: kept since the call above
        >>> kept is noise.alter(x, torch.arange(3), 4), noise.cache_nbytes > 0
        (True, True)
        >>> bool(torch.equal(kept, GaussianNoise(levels=5, max_std=0.4, cache_mib=0).alter(x, torch.arange(3), 4)))
        True

    """

    name = "noise"
    pure = True  # private generators, keyed by probe and level: safe to run ahead on a helper thread

    def __init__(
        self,
        levels: int = 100,
        max_std: float = 1.0,
        clip: tuple[float, float] | None = (0.0, 1.0),
        seed: int = 0,
        cache_mib: float = DEFAULT_CACHE_MIB,
    ) -> None:
        super().__init__(levels)
        self.max_std = check_number("max_std", max_std, positive=True)  # 0 would alter nothing
        self.clip = check_clip(clip)
        self.seed = check_int("seed", seed, minimum=0)
        self.cache_mib = check_number("cache_mib", cache_mib)
        self._stds = torch.linspace(0.0, self.max_std, self.levels, dtype=torch.float64).tolist()
        self._cache = self._empty_cache()
        self._last_range = _no_range()

    def _empty_cache(self) -> AlteredCache:
        return AlteredCache(int(self.cache_mib * 2**20))

    def init_args(self) -> dict[str, object]:
        """The settings and ``cache_mib`` (which changes no number, so is not part of :meth:`_settings`)."""
        return {**self._settings(), "cache_mib": self.cache_mib}

    @property
    def cache_nbytes(self) -> int:
        """Bytes of altered inputs (and their blocks' clean inputs) kept now, at most ``cache_mib`` MiB."""
        return self._cache.nbytes

    def clear_cache(self) -> None:
        """Forget the altered inputs kept so far (the next evaluation draws its noise again)."""
        self._cache.clear()

    def __getstate__(self) -> dict[str, object]:
        # a copy (a DDP process, a checkpointed callback) starts with an empty cache: no tensors, no lock
        state = dict(self.__dict__)
        state.pop("_cache")
        state.pop("_last_range")
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._cache = self._empty_cache()
        self._last_range = _no_range()

    def strengths(self) -> Tensor:
        """Noise standard deviation of each level."""
        return torch.tensor(self._stds, dtype=torch.float64)

    def _settings(self) -> dict[str, object]:
        return {"levels": self.levels, "max_std": self.max_std, "clip": self.clip, "seed": self.seed}

    def check_inputs(self, inputs: Tensor, indices: Tensor) -> None:
        """Inputs must be finite, floating and, when clipping, inside ``clip``."""
        check_alteration_inputs(inputs, self.clip, "GaussianNoise", indices)

    def noise(self, indices: Tensor, level: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """Standard-normal noise ``(n, *shape)`` for probes ``indices`` at ``level`` (float32).

        Drawn per block of :data:`NOISE_BLOCK` consecutive probe indices from a generator seeded
        by ``(seed, block, level)``, so each probe's noise is independent of how probes are batched.
        """
        indices = indices.to("cpu", torch.int64)
        if indices.numel() == 0:
            return torch.empty((0, *shape), dtype=torch.float32, device=device)
        n = indices.shape[0]
        first = int(indices[0])
        consecutive = bool((indices == torch.arange(first, first + n)).all())
        if consecutive:  # the usual case: a range of probes, no gather needed
            blocks = list(range(first // NOISE_BLOCK, (first + n - 1) // NOISE_BLOCK + 1))
        else:
            unique, position = torch.unique(indices // NOISE_BLOCK, return_inverse=True)
            blocks = unique.tolist()
        # randn(size, generator) is empty(size).normal_(generator): filling views of one buffer
        # draws the very same numbers without a stack and a gather copy of the noise
        # float32 whatever the default dtype (Lightning's "64-true" changes it): the same draws
        drawn = torch.empty((len(blocks), NOISE_BLOCK, *shape), dtype=torch.float32, device=device)
        generator = torch.Generator(device=device)
        for row, block in enumerate(blocks):
            generator.manual_seed(_mix(self.seed, block, level))
            drawn[row].normal_(generator=generator)
        if consecutive:
            offset = first - blocks[0] * NOISE_BLOCK
            return drawn.view(-1, *shape)[offset : offset + n]
        rows = (indices % NOISE_BLOCK).to(device)
        return drawn[position.to(device), rows]

    def alter(self, inputs: Tensor, indices: Tensor, level: int) -> Tensor:
        """Level ``level`` of ``inputs``: ``inputs`` itself at level 0; kept ones reused (see ``cache_mib``).

        A kept tensor is returned as it is: a caller must not write into it (a write is
        detected, and that entry made anew next time).
        """
        if level == 0:
            return inputs
        if self._cache.budget_bytes > 0 and inputs.shape[0] > 0:
            first = self._range_start(indices)
            if first is not None:
                make = lambda: self._made(inputs, indices, level)  # noqa: E731
                return self._cache.get_or_make(inputs, first, level, self._cache_context(), make)
        return self._made(inputs, indices, level)

    def _all_levels_kept(self, batch: ProbeBatch) -> bool:
        """Whether every altered level of ``batch`` is kept from an earlier evaluation (nothing to draw)."""
        if self._cache.budget_bytes <= 0 or batch.inputs.shape[0] == 0:
            return False
        first = self._range_start(batch.indices)
        if first is None:
            return False
        return self._cache.holds(batch.inputs, first, range(1, self.levels), self._cache_context())

    def _cache_context(self) -> tuple[object, ...]:
        """The settings a kept tensor was made with (a change empties the cache)."""
        return (self.seed, self.max_std, self.clip, self.levels)

    def _range_start(self, indices: Tensor) -> int | None:
        """:func:`_first_of_range` of ``indices``, remembered for the last indices tensor (asked once per level).

        Reused only for the very object seen last, unmodified since (its version counter); an
        inference tensor keeps no version counter, so it is checked anew every time.
        """
        seen, version, first = self._last_range
        if seen() is indices and version == tensor_version(indices) != -1:
            return first
        first = _first_of_range(indices)
        self._last_range = (weakref.ref(indices), tensor_version(indices), first)
        return first

    def _made(self, inputs: Tensor, indices: Tensor, level: int) -> Tensor:
        noise = self.noise(indices, level, tuple(inputs.shape[1:]), inputs.device).to(inputs.dtype)
        # the noise buffer is ours: write the sum into it rather than into a new tensor
        altered = torch.add(inputs, noise, alpha=self._stds[level], out=noise)
        return altered if self.clip is None else altered.clamp_(*self.clip)
