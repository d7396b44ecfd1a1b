"""``KNNAccuracy``: leave-one-out k-NN accuracy of a labelled probe's representations as a ``torchmetrics.Metric``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from rmqm_callback.functional._checks import check_int
from rmqm_callback.functional.knn import DEFAULT_KNN_K, _knn_accuracy_compute, _knn_accuracy_update
from rmqm_callback.metrics._representations import ProbeRepresentations


class KNNAccuracy(ProbeRepresentations):
    r"""Leave-one-out k-NN accuracy of labelled representations that arrive in blocks, on one or several processes.

    Every probe is classified by the ``k`` others most similar to it, so the accuracy needs the
    whole probe: the metric keeps the representations (float64, ``N x d``) with their labels and
    probe indices, gathers them across processes and puts them back in probe order before calling
    :func:`~rmqm_callback.functional.knn_accuracy`. The result is exactly what that function gives
    on the whole probe (its tie rules included), whatever the blocks, their order or the number of
    processes.

    ``compute`` returns NaN where the accuracy does not exist (``k`` or fewer probes, non-finite
    representations) instead of raising, so that a diverged run can be logged and stopped on.

    Args:
        k: neighbours per vote (default :data:`~rmqm_callback.functional.knn.DEFAULT_KNN_K`).

    Examples:
        >>> import torch
        >>> from rmqm_callback.functional import knn_accuracy
        >>> generator = torch.Generator().manual_seed(0)
        >>> representations, labels = torch.randn(30, 8, generator=generator), torch.arange(30) % 3
        >>> metric = KNNAccuracy(k=3)
        >>> metric.update(representations[20:], labels[20:], torch.arange(20, 30))  # any order of blocks
        >>> metric.update(representations[:20], labels[:20], torch.arange(20))
        >>> bool(metric.compute() == knn_accuracy(representations, labels, k=3))
        True

    """

    higher_is_better: bool | None = True

    def __init__(self, k: int = DEFAULT_KNN_K, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.k = check_int("k", k, minimum=1)

    def update(self, representations: Tensor, labels: Tensor, indices: Tensor | None = None) -> None:
        """Add ``(n, d)`` representations, their ``(n,)`` class labels, of probes ``indices`` (default: the next n)."""
        if labels is None:
            raise TypeError("`KNNAccuracy.update`: `labels` are required (a 1-D integer or bool tensor).")
        self._add(representations, indices, labels)

    def compute(self) -> Tensor:
        """The accuracy as a 0-dim float64 tensor (NaN where it does not exist)."""
        matrix, labels = self._gathered()
        return knn_or_nan(matrix, labels, self.k)


def knn_or_nan(matrix: Tensor, labels: Tensor | None, k: int) -> Tensor:
    """:func:`~rmqm_callback.functional.knn_accuracy` of ``matrix``, or NaN where it does not exist."""
    usable = labels is not None and matrix.shape[0] > k and matrix.shape[1] >= 1
    if usable and bool(torch.isfinite(matrix).all()):
        unit, codes = _knn_accuracy_update(matrix, labels, k)  # type: ignore[arg-type]
        return _knn_accuracy_compute(unit, codes, k)
    return torch.tensor(math.nan, dtype=torch.float64, device=matrix.device)
