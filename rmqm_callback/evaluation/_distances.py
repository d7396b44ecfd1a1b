"""One block's trajectory turned into its distance series, a chunk of levels at a time.

RMQM needs, for every probe and level ``j``, the distance of the level's (normalised)
representation to level 0 and to level ``j - 1``. Computing them level by level costs a handful
of small tensor operations per forward pass, which is a visible share of a small encoder's
evaluation when torch's threads have to wake for each of them. :class:`TrajectoryDistances`
copies the representations of up to :data:`CHUNK_BYTES` worth of levels into a float64 buffer
and computes their distances in one go, in place: the same element-wise operations and the same
row reductions, so the same numbers bit for bit, in a few operations per chunk and without a
fresh allocation of the chunk's size for each of them. Memory stays bounded by two such buffers,
whatever the number of probes or levels.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from rmqm_callback.functional.rmqm import prepare_embeddings, unit_rows

#: The most bytes (as float64) of representations gathered before their distances are computed.
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
        self._previous: Tensor | None = None
        self._chunk: Tensor | None = None  # (levels per chunk, n, d) float64: the pending levels, cast
        self._scratch: Tensor | None = None  # the same shape: their differences
        self._pending = 0
        self._pending_float64 = False  # a pending level came as float64 (rescaled before normalising)
        self._to_original: list[Tensor] = []
        self._to_previous: list[Tensor] = []

    def add(self, representation: Tensor) -> None:
        """Take the ``(n, d)`` representation of the next level (level 0 first)."""
        self.levels += 1
        if self._origin is None:
            self._origin = self._previous = prepare_embeddings(representation, self.normalize)
            chunk_levels = max(1, self.chunk_bytes // max(1, 8 * representation.numel()))
            shape = (chunk_levels, *representation.shape)
            self._chunk = torch.empty(shape, dtype=torch.float64, device=representation.device)
            self._scratch = torch.empty_like(self._chunk)
            return
        chunk = cast(Tensor, self._chunk)
        chunk[self._pending].copy_(representation)  # the exact cast prepare_embeddings makes
        self._pending += 1
        self._pending_float64 |= representation.dtype == torch.float64
        if self._pending == chunk.shape[0]:
            self._measure_pending()

    def _measure_pending(self) -> None:
        # levels are pending only after level 0 set the origin, the previous level and the buffers
        origin, previous = cast(Tensor, self._origin), cast(Tensor, self._previous)
        phi, steps = cast(Tensor, self._chunk)[: self._pending], cast(Tensor, self._scratch)[: self._pending]
        if self.normalize:  # as prepare_embeddings(torch.stack(levels)), written into the buffer
            unit_rows(phi, rescale=self._pending_float64, in_place=True)
        self._to_original.append(torch.linalg.vector_norm(torch.sub(phi, origin, out=steps), dim=-1))
        torch.sub(phi[0], previous, out=steps[0])
        torch.sub(phi[1:], phi[:-1], out=steps[1:])
        self._to_previous.append(torch.linalg.vector_norm(steps, dim=-1))
        self._previous = phi[-1].clone()  # the buffer is written again by the next chunk
        self._pending, self._pending_float64 = 0, False

    def result(self) -> tuple[Tensor, Tensor]:
        """``(do, dp)``, each ``(n, J)`` for levels ``1..J`` (``J`` = levels added after level 0)."""
        if self._pending:
            self._measure_pending()
        if not self._to_original:
            raise ValueError(f"A trajectory needs at least 2 levels to have distances, got {self.levels}.")
        return torch.cat(self._to_original).T.contiguous(), torch.cat(self._to_previous).T.contiguous()
