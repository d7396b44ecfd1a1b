"""``SpectralScores``: RankMe and alpha-ReQ of a probe's representations as a ``torchmetrics.Metric``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from rmqm_callback.functional.spectral import alpha_req, rankme
from rmqm_callback.keys import ALPHA_REQ_KEY, RANKME_KEY, SPECTRAL_QUANTITIES
from rmqm_callback.metrics._representations import ProbeRepresentations


class SpectralScores(ProbeRepresentations):
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

    __jit_unused_properties__: ClassVar[list[str]] = [*ProbeRepresentations.__jit_unused_properties__, "quantities"]

    @property
    def quantities(self) -> tuple[str, ...]:
        """The keys of :meth:`compute` (one of them a :class:`~rmqm_callback.metrics.ScalarView` can show)."""
        return SPECTRAL_QUANTITIES

    def update(self, representations: Tensor, indices: Tensor | None = None) -> None:
        """Add ``(n, d)`` representations of probes ``indices`` (default: the next ``n`` positions)."""
        self._add(representations, indices, None)

    def compute(self) -> dict[str, Tensor]:
        """``{"RankMe": ..., "alpha_ReQ": ...}`` as 0-dim float64 tensors (NaN where undefined)."""
        matrix, _ = self._gathered()
        return spectral_scores(matrix)


def spectral_scores(matrix: Tensor) -> dict[str, Tensor]:
    """RankMe and alpha-ReQ of ``matrix``, each NaN where it does not exist."""
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
