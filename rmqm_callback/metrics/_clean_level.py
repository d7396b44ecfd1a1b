"""The scores of a probe's clean (level-0) representations that an evaluation logs: one kept state, two computations.

The evaluation stream hands every block's clean representations (and the probe's labels) to one
:class:`CleanLevelScores`; its ``compute`` gives RankMe and alpha-ReQ
(:func:`~rmqm_callback.metrics.spectral.spectral_scores`) and the k-NN accuracy
(:func:`~rmqm_callback.metrics.knn.knn_or_nan`) from the same gathered ``N x d`` matrix, so
turning both on keeps one copy of it, not two.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rmqm_callback.functional._checks import check_bool, check_int
from rmqm_callback.keys import KNN_ACCURACY_KEY
from rmqm_callback.metrics._representations import ProbeRepresentations
from rmqm_callback.metrics.knn import knn_or_nan
from rmqm_callback.metrics.spectral import spectral_scores


class CleanLevelScores(ProbeRepresentations):
    """RankMe and alpha-ReQ (``spectral``) and the k-NN accuracy (``knn``: its ``k``, or ``None``) of one probe.

    Args:
        spectral: compute ``RankMe`` and ``alpha_ReQ``.
        knn: ``k`` of the ``knn_accuracy``, or ``None`` for none (labels given to ``update`` are then not kept).

    Examples:
        >>> import torch
        >>> scores = CleanLevelScores(spectral=True, knn=1)
        >>> scores.update(torch.eye(4), torch.arange(4), torch.tensor([0, 0, 1, 1]))
        >>> sorted(scores.compute())
        ['RankMe', 'alpha_ReQ', 'knn_accuracy']

    """

    def __init__(self, spectral: bool = True, knn: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spectral = check_bool("spectral", spectral)
        self.knn = None if knn is None else check_int("knn", knn, minimum=1)

    def update(self, representations: Tensor, indices: Tensor | None = None, labels: Tensor | None = None) -> None:
        """Add ``(n, d)`` clean representations of probes ``indices``, with their labels where ``knn`` is set.

        Raises:
            ValueError: ``knn`` is set and ``labels`` are missing.

        """
        if self.knn is not None and labels is None:
            raise ValueError(f"CleanLevelScores(knn={self.knn}) needs the probe's labels with every update.")
        self._add(representations, indices, labels if self.knn is not None else None)

    def compute(self) -> dict[str, Tensor]:
        """The scores asked for, as 0-dim float64 tensors (NaN where one does not exist)."""
        matrix, labels = self._gathered()
        scores = spectral_scores(matrix) if self.spectral else {}
        if self.knn is not None:
            scores[KNN_ACCURACY_KEY] = knn_or_nan(matrix, labels, self.knn)
        return scores
