"""The studies' measurements of an encoder: its representations of a batch, their 1-NN accuracy, a safe score."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def embed(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """Representations ``model(images)`` in eval mode, in batches; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(chunk) for chunk in images.split(batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def knn_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor, k: int = 1) -> float:
    """Accuracy of a k-nearest-neighbour vote on L2-normalised embeddings (cosine); ties -> lowest label.

    Raises:
        ValueError: If the shapes do not match or ``k`` is not in 1..len(train_z).
    """
    if train_z.ndim != 2 or test_z.ndim != 2 or train_z.shape[1] != test_z.shape[1]:
        raise ValueError(
            f"`train_z`, `test_z` must be (n, d), same d, got {tuple(train_z.shape)}, {tuple(test_z.shape)}."
        )
    if len(train_y) != len(train_z) or len(test_y) != len(test_z):
        raise ValueError(
            f"`train_y`, `test_y` need one label per row, got {len(train_y)} for {len(train_z)} train rows, "
            f"{len(test_y)} for {len(test_z)} test rows."
        )
    if not 1 <= k <= len(train_z):
        raise ValueError(f"`k` must be in 1..{len(train_z)}, got {k}.")
    similarity = F.normalize(test_z.float(), dim=1) @ F.normalize(train_z.float(), dim=1).T
    neighbour_labels = train_y[similarity.topk(k, dim=1).indices]  # (n_test, k)
    votes = F.one_hot(neighbour_labels, int(train_y.max()) + 1).sum(1)
    return (votes.argmax(1) == test_y).float().mean().item()


def safe_score(fn: Callable[[Tensor], Tensor], z: Tensor) -> float:
    """``float(fn(z))``, or NaN where ``fn`` raises ``ValueError`` (non-finite, zero or rank-1 ``z``)."""
    try:
        return float(fn(z))
    except ValueError:
        return math.nan
