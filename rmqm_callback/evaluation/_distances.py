"""One block's trajectory turned into its distance series, a chunk of levels at a time.

RMQM needs, for every probe and level ``j``, the distance of the level's (normalised)
representation to level 0 and to level ``j - 1``. Computing them level by level costs a handful
of small tensor operations per forward pass, which is a visible share of a small encoder's
evaluation when torch's threads have to wake for each of them. :class:`TrajectoryDistances`
gathers the representations of up to :data:`CHUNK_BYTES` worth of levels and computes their
distances in one go: the same element-wise operations and the same row reductions, so the same
numbers bit for bit, in a few operations per chunk. The chunk is cast to float64 as it is stacked
into a buffer whose first row holds the previous level, normalised in place, and its differences
are written into a second buffer, both made once per block, so a float32 chunk is not copied
between the operations. Memory stays bounded by the pending levels and those two buffers (about
twice :data:`CHUNK_BYTES`), whatever the number of probes or levels.
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from torch import Tensor

from rmqm_callback.functional.rmqm import normalize_float64_, prepare_embeddings

#: The most bytes (as float64) of representations gathered before their distances are computed (a block keeps
#: two buffers of about this size: the levels in float64 and their differences).
CHUNK_BYTES = 4 * 2**20


class TrajectoryDistances:
    """Distances ``(n, J)`` to the original and to the previous level, fed one level at a time.

    Args:
        normalize: L2-normalise the representations (in float64) before measuring distances.
        chunk_bytes: the most bytes of float64 representations gathered before they are measured.

    Examples:
        >>> import torch
        >>> series = TrajectoryDistances(normalize=False)
        >>> for level in range(4):
        ...     series.add(torch.full((2, 1), float(level)))
        >>> to_original, to_previous = series.result()
        >>> to_original.tolist(), to_previous.tolist()
        ([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])

    """

    def __init__(self, normalize: bool, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.normalize = normalize
        self.chunk_bytes = chunk_bytes
        self.levels = 0
        self._origin: Tensor | None = None
        self._pending: list[Tensor] = []
        self._chunk_levels = 1
        self._to_original: list[Tensor] = []
        self._to_previous: list[Tensor] = []
        # row 0: the previous level (level 0 until a chunk is measured); rows 1..: a chunk's levels
        self._levels: Tensor | None = None
        self._differences: Tensor | None = None

    def add(self, representation: Tensor) -> None:
        """Take the ``(n, d)`` representation of the next level (level 0 first)."""
        self.levels += 1
        if self._origin is None:
            with torch.no_grad():  # distances need no gradient, whatever an alteration yields
                self._origin = prepare_embeddings(representation, self.normalize)
            self._chunk_levels = max(1, self.chunk_bytes // max(1, 8 * representation.numel()))
            return
        self._pending.append(representation)
        if len(self._pending) >= self._chunk_levels:
            self._measure_pending()

    @torch.no_grad()
    def _measure_pending(self) -> None:
        # levels are pending only after level 0 set the origin
        origin = cast(Tensor, self._origin)
        first, k = self._pending[0], len(self._pending)
        if self._levels is None or self._levels.shape[0] < k + 1:  # the first chunk: a full one, or the only one
            previous = origin if self._levels is None else self._levels[0]
            self._levels = first.new_empty((k + 1, *first.shape), dtype=torch.float64)
            self._differences = torch.empty_like(self._levels)
            self._levels[0].copy_(previous)
        levels, differences = self._levels, cast(Tensor, self._differences)
        phi = torch.stack(self._pending, out=levels[1 : k + 1])  # cast to float64 as they are stacked
        if self.normalize:  # as the stacked dtype would be: a float64 level makes the chunk float64
            normalize_float64_(phi, functools.reduce(torch.promote_types, (level.dtype for level in self._pending)))
        self._pending.clear()
        self._to_original.append(torch.linalg.vector_norm(torch.sub(phi, origin, out=differences[:k]), dim=-1))
        steps = torch.sub(phi, levels[:k], out=differences[:k])
        self._to_previous.append(torch.linalg.vector_norm(steps, dim=-1))
        levels[0].copy_(phi[-1])

    @torch.no_grad()
    def result(self) -> tuple[Tensor, Tensor]:
        """``(do, dp)``, each ``(n, J)`` for levels ``1..J`` (``J`` = levels added after level 0)."""
        if self._pending:
            self._measure_pending()
        if not self._to_original:
            raise ValueError(f"A trajectory needs at least 2 levels to have distances, got {self.levels}.")
        return torch.cat(self._to_original).T.contiguous(), torch.cat(self._to_previous).T.contiguous()
