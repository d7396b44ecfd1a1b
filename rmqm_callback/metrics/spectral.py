"""``SpectralScores``: RankMe and alpha-ReQ of a probe's representations as a ``torchmetrics.Metric``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, cast

import torch
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from rmqm_callback.functional.spectral import alpha_req, rankme
from rmqm_callback.keys import ALPHA_REQ_KEY, RANKME_KEY, SPECTRAL_QUANTITIES
from rmqm_callback.metrics._state_dtype import KeepsStateDtype


class SpectralScores(KeepsStateDtype):
    r"""RankMe and alpha-ReQ of representations that arrive in blocks, on one or several processes.

    The scores need the singular values of the whole ``(N, d)`` matrix, which do not add up
    over blocks, so the metric keeps the representations themselves (float64, ``N x d``: 4 MiB
    for 512 probes of width 1,024, 16 MiB at width 4,096; a ``d x d`` Gram-matrix state would
    need ``d^2``, 128 MiB at width 4,096) with their probe indices, gathers them across processes,
    and puts them back in probe order before calling :func:`~rmqm_callback.functional.rankme` and
    :func:`~rmqm_callback.functional.alpha_req`. So the result is exactly what those functions give
    on the whole matrix, whatever the blocks or the number of processes.

    ``compute`` returns NaN for a score that does not exist (fewer than 2 probes, non-finite
    representations, the zero matrix, fewer than 2 nonzero eigenvalues for alpha-ReQ) instead of
    raising, so that a collapsed run can be logged and stopped on.

    Examples:
        >>> import torch
        >>> scores = SpectralScores()
        >>> representations = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
        >>> scores.update(representations[:20], torch.arange(20))
        >>> scores.update(representations[20:], torch.arange(20, 30))
        >>> from rmqm_callback.functional import rankme
        >>> bool(scores.compute()["RankMe"] == rankme(representations))
        True

    """

    is_differentiable: bool = False
    higher_is_better: bool | None = None
    full_state_update: bool = False
    __jit_unused_properties__: ClassVar[list[str]] = [*KeepsStateDtype.__jit_unused_properties__, "quantities"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # flat rows, so that a process without a block (an empty tensor) gathers with the others
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.add_state("width", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")

    @property
    def quantities(self) -> tuple[str, ...]:
        """The keys of :meth:`compute` (one of them a :class:`~rmqm_callback.metrics.ScalarView` can show)."""
        return SPECTRAL_QUANTITIES

    def _state(self, name: str) -> Tensor:
        value = getattr(self, name)
        if isinstance(value, list):
            return dim_zero_cat(value) if value else torch.zeros(0, dtype=torch.float64, device=self.device)
        return cast(Tensor, value)

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
        """Sync like torchmetrics, a process that saw no probe sending empty float64 tensors (not float32 ones)."""
        for name in ("rows", "indices"):
            if not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=torch.float64, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)

    def update(self, representations: Tensor, indices: Tensor | None = None) -> None:
        """Add ``(n, d)`` representations of probes ``indices`` (default: the next ``n`` positions)."""
        if not isinstance(representations, Tensor) or not representations.is_floating_point():
            raise TypeError(f"`representations` must be a floating tensor, got {type(representations).__name__}.")
        if representations.ndim != 2:
            raise ValueError(f"`representations` must be (n, d), got shape {tuple(representations.shape)}.")
        width = representations.shape[1]
        known = int(self._state("width"))  # 0 before the first update
        if known not in (0, width):
            raise ValueError(f"`representations` have width {width}, earlier updates had {known}.")
        if indices is None:
            start = sum(part.numel() for part in cast(list, self.indices))
            indices = torch.arange(start, start + representations.shape[0])
        if indices.shape != representations.shape[:1]:
            raise ValueError(f"`indices` must have shape ({representations.shape[0]},), got {tuple(indices.shape)}.")
        device = self._state("width").device
        cast(list, self.rows).append(representations.detach().to(device=device, dtype=torch.float64).flatten())
        cast(list, self.indices).append(indices.to(device=device, dtype=torch.float64))
        self.width = torch.tensor(float(width), dtype=torch.float64, device=device)

    def compute(self) -> dict[str, Tensor]:
        """``{"RankMe": ..., "alpha_ReQ": ...}`` as 0-dim float64 tensors (NaN where undefined)."""
        if self._update_count > 0 and isinstance(self.indices, list) and not self.indices:
            # every update appends a block (an empty one too): someone emptied the lists behind our back
            raise ValueError(
                "SpectralScores was updated but holds no representations: its states are lists, which"
                " Metric.reset() empties in place, and torchmetrics' Running wrapper keeps them by reference, so its"
                " window is emptied too. Running cannot wrap SpectralScores; compute it over the probe you want."
            )
        width = int(self._state("width"))
        rows = self._state("rows")
        matrix = rows.view(-1, width) if width else rows.view(0, 0)
        matrix = matrix[torch.argsort(self._state("indices"), stable=True)]
        return {RANKME_KEY: _or_nan(rankme, matrix), ALPHA_REQ_KEY: _or_nan(alpha_req, matrix)}


def _or_nan(score: Any, matrix: Tensor) -> Tensor:
    """``score(matrix)``, or NaN where the score does not exist for this matrix."""
    usable = matrix.shape[0] >= 2 and matrix.shape[1] >= 1 and bool(torch.isfinite(matrix).all())
    if usable:
        try:
            return score(matrix)
        except ValueError:  # the zero matrix; fewer than 2 nonzero eigenvalues
            pass
    return torch.tensor(math.nan, dtype=torch.float64, device=matrix.device)
