r"""Leave-one-out k-nearest-neighbour accuracy of labelled representations (cosine similarity).

A labelled reference beside the label-free scores: each representation is classified by a
majority vote of its ``k`` most similar others, and the share classified correctly is the accuracy.
Every tie is broken by a fixed rule, so the value depends only on the representations, their
labels and their order, not on blocks, devices' thread counts or processes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rmqm_callback.functional._checks import check_int

__all__ = ["DEFAULT_KNN_K", "check_class_labels", "class_labels_problem", "knn_accuracy", "knn_for_probe", "knn_k"]

#: The ``k`` of ``knn=True`` (the callback, :func:`~rmqm_callback.score`, ``rmqm score``) and of :func:`knn_accuracy`.
DEFAULT_KNN_K = 1
#: Similarities computed at once: queries are taken in blocks of ``_BLOCK_ELEMENTS // N`` rows (32 MiB of float64).
_BLOCK_ELEMENTS = 2**22


def knn_k(knn: Any) -> int | None:
    """The ``k`` that a ``knn`` setting asks for: ``True`` is :data:`DEFAULT_KNN_K`, ``False`` is ``None`` (off).

    Raises:
        TypeError: ``knn`` is neither a bool nor an int.
        ValueError: ``knn`` is an int below 1.

    Examples:
        >>> knn_k(True), knn_k(False), knn_k(5)
        (1, None, 5)
    """
    if isinstance(knn, bool):
        return DEFAULT_KNN_K if knn else None
    if not isinstance(knn, int):
        raise TypeError(f"`knn` must be a bool or an int k >= 1, got {knn!r} of type {type(knn).__name__}.")
    if knn < 1:
        raise ValueError(f"`knn` must be True, False or an int k >= 1, got {knn}; pass knn=False to turn it off.")
    return knn


def knn_for_probe(knn: Any, labels: Any, size: int | None, owner: str) -> int | None:
    """The ``k`` of a probe's k-NN accuracy under the setting ``knn``, or ``None`` when none is computed.

    ``knn=True`` computes it where the probe has class labels (:func:`class_labels_problem`) and
    quietly not otherwise; ``knn=k`` asks for it, so a probe without class labels is an error;
    ``knn=False`` never computes it.

    Args:
        knn: the setting (``True``, ``False`` or ``k``).
        labels: the probe's labels (or those of its first samples), or ``None``.
        size: the number of probes evaluated, or ``None`` when not known yet.
        owner: who asks, for the messages (``"RMQMCallback"``, ``"score()"``).

    Raises:
        ValueError: ``knn=k`` for a probe without class labels; ``size <= k`` (leave-one-out needs ``k`` others).

    Examples:
        >>> import torch
        >>> knn_for_probe(True, torch.tensor([0, 1, 1]), 3, "score()"), knn_for_probe(True, None, 3, "score()")
        (1, None)
    """
    k = knn_k(knn)
    problem = class_labels_problem(labels)
    if k is None or (problem is not None and knn is True):
        return None
    if problem is not None:
        raise ValueError(
            f"{owner}(knn={knn}) computes the k-NN accuracy of a labelled probe, but the probe cannot give it:"
            f" {problem}. Pass a probe with class labels (an (inputs, labels) pair, a Dataset or DataLoader of"
            " (input, label) pairs, or RMQMCallback(probe=n) of labelled data), or knn=True (k-NN only where the"
            " probe has labels) or knn=False."
        )
    if size is not None and size <= k:
        raise ValueError(
            f"{owner}(knn={knn}): leave-one-out k-NN with k = {k} needs at least {k + 1} probes, but the probe"
            f" evaluated has {size}. Pass a larger probe, a smaller knn=k, or knn=False."
        )
    return k


def class_labels_problem(labels: Any) -> str | None:
    """Why ``labels`` are not class labels (a 1-D integer or bool tensor), or ``None`` when they are."""
    if labels is None:
        return "it has no labels"
    if not isinstance(labels, Tensor):
        return f"its labels are a {type(labels).__name__}, not a tensor"
    if labels.is_floating_point() or labels.is_complex():
        return (
            f"its labels are {labels.dtype} (shape {tuple(labels.shape)}), not class labels: k-NN needs a 1-D"
            " integer or bool tensor (cast class indices stored as floats with labels.long())"
        )
    if labels.ndim != 1:
        return (
            f"its labels have shape {tuple(labels.shape)}, not (N,): k-NN needs one class per sample (a 1-D"
            " integer or bool tensor)"
        )
    return None


def check_class_labels(labels: Any, count: int, fn_name: str) -> Tensor:
    """``labels`` as int64 if they are ``count`` class labels (a 1-D integer or bool tensor), else raise.

    Casting to int64 keeps distinct labels distinct (for unsigned 64-bit labels too: the cast is one-to-one).

    Raises:
        TypeError: ``labels`` is not a tensor, or of a floating or complex dtype.
        ValueError: ``labels`` is not 1-D, or not of length ``count``.
    """
    problem = class_labels_problem(labels)
    if problem is not None:
        wrong_kind = not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex()
        error = TypeError if wrong_kind else ValueError
        raise error(f"`{fn_name}`: `labels` must be class labels, but {problem}.")
    if labels.shape[0] != count:
        raise ValueError(f"`{fn_name}`: {count} representations but {labels.shape[0]} labels.")
    return labels.to(torch.int64)


def _knn_accuracy_update(representations: Tensor, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Check the inputs; return the unit-norm float64 representations and the class codes ``0..C-1``."""
    if not isinstance(representations, Tensor) or not representations.is_floating_point():
        kind = representations.dtype if isinstance(representations, Tensor) else type(representations).__name__
        raise TypeError(f"`knn_accuracy`: `representations` must be a floating-point tensor, got {kind}.")
    if representations.ndim != 2:
        raise ValueError(
            f"`knn_accuracy`: `representations` must be 2-D (N, d), got shape {tuple(representations.shape)}."
        )
    check_int("k", k, minimum=1)
    n = representations.shape[0]
    codes = check_class_labels(labels, n, "knn_accuracy")
    if n <= k:
        raise ValueError(
            f"`knn_accuracy`: leave-one-out k-NN with k = {k} needs at least {k + 1} representations, got N = {n}."
        )
    if not bool(torch.isfinite(representations).all()):
        raise ValueError("`knn_accuracy`: `representations` must be finite, got NaN/inf values.")
    x = representations.detach().to(torch.float64)
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    unit = x / torch.where(norms > 0, norms, torch.ones_like(norms))  # a zero row stays zero: similarity 0
    _, codes = torch.unique(codes.to(x.device), return_inverse=True)
    return unit, codes


def _nearest(similarities: Tensor, k: int) -> Tensor:
    """Column indices of each row's ``k`` largest similarities: larger first, equal ones in index order."""
    rows, columns = similarities.shape
    if k == 1:  # max returns the first (lowest) index of a row's largest value: the rule, at less cost
        return similarities.max(dim=1, keepdim=True).indices
    kth = similarities.topk(k, dim=1).values[:, -1:]
    # the k largest and everything tied with the k-th: at least k per row, in row-major (index) order
    row, column = (similarities >= kth).nonzero(as_tuple=True)
    counts = torch.bincount(row, minlength=rows)
    place = torch.arange(row.numel(), device=row.device) - (counts.cumsum(0) - counts)[row]  # index order in a row
    values = similarities.new_full((rows, int(counts.max())), -torch.inf)
    indices = torch.full(values.shape, columns, dtype=torch.int64, device=similarities.device)
    values[row, place] = similarities[row, column]
    indices[row, place] = column
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]  # stable: lower index first
    return indices.gather(1, order)


def _votes(neighbour_codes: Tensor, classes: int) -> Tensor:
    """Each row's majority class; a tie goes to the tied class whose best-ranked neighbour ranks first."""
    rows, k = neighbour_codes.shape
    counts = torch.zeros(rows, classes, dtype=torch.int64, device=neighbour_codes.device)
    counts.scatter_add_(1, neighbour_codes, torch.ones_like(neighbour_codes))
    votes = counts.gather(1, neighbour_codes)  # the votes of each neighbour's class
    winning = votes == votes.max(dim=1, keepdim=True).values
    ranks = torch.arange(k, device=neighbour_codes.device).expand(rows, k)
    first = torch.where(winning, ranks, k).min(dim=1, keepdim=True).values
    return neighbour_codes.gather(1, first).squeeze(1)


def _knn_accuracy_compute(unit: Tensor, codes: Tensor, k: int) -> Tensor:
    """Leave-one-out k-NN accuracy of unit-norm rows, one block of queries at a time."""
    n = unit.shape[0]
    classes = int(codes.max()) + 1
    block = max(1, _BLOCK_ELEMENTS // n)
    correct = torch.zeros((), dtype=torch.int64, device=unit.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarities = unit[start:stop] @ unit.T
        queries = torch.arange(stop - start, device=unit.device)
        similarities[queries, queries + start] = -torch.inf  # leave the query itself out
        predicted = _votes(codes[_nearest(similarities, k)], classes)
        correct += (predicted == codes[start:stop]).sum()
    return correct.to(torch.float64) / n


def knn_accuracy(representations: Tensor, labels: Tensor, k: int = DEFAULT_KNN_K) -> Tensor:
    r"""Leave-one-out k-nearest-neighbour accuracy of labelled representations, by cosine similarity.

    Each representation :math:`x_i` is classified by the labels of the ``k`` others most similar to it,

    .. math::
        s_{ij} = \frac{x_i \cdot x_j}{\lVert x_i \rVert \, \lVert x_j \rVert}, \qquad
        \operatorname{acc} = \frac{1}{N} \sum_{i=1}^{N}
        \big[\, \operatorname{vote}(\{y_j : j \in \mathcal{N}_k(i)\}) = y_i \,\big]

    where :math:`\mathcal{N}_k(i)` are the ``k`` indices :math:`j \neq i` with the largest
    :math:`s_{ij}` (computed in float64; a zero representation has similarity 0 to every other).
    Ties are broken so that the value is defined by the data alone:

    - **neighbours**: among equal similarities, the lower probe index (row) ranks first;
    - **votes**: the class with the most votes wins; among classes with equally many votes, the
      one whose best-ranked neighbour ranks first (the closest, after the rule above).

    Args:
        representations: floating tensor of shape ``(N, d)``, all finite, ``N > k``.
        labels: class labels, a 1-D tensor of shape ``(N,)`` of any integer dtype or bool (any
            values: only equality matters).
        k: neighbours per vote, an int ``>= 1``.

    Returns:
        0-dim ``torch.float64`` tensor in ``[0, 1]``: the share of representations whose vote is their label.

    Raises:
        TypeError: ``representations`` is not floating; ``labels`` is not a tensor, or floating.
        ValueError: a shape does not fit, ``N <= k``, ``k < 1``, or a representation is not finite.

    Examples:
        >>> import torch
        >>> from rmqm_callback.functional import knn_accuracy
        >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.3]])
        >>> labels = torch.tensor([0, 0, 1, 1, 1])
        >>> knn_accuracy(x, labels).item()  # the last one's nearest neighbour is of class 0
        0.8
    """
    unit, codes = _knn_accuracy_update(representations, labels, k)
    return _knn_accuracy_compute(unit, codes, k)
