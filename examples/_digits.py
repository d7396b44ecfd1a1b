"""Data and downstream score for the examples: scikit-learn's bundled 8x8 digits, splits, 1-NN accuracy.

Nothing here downloads data: ``load_digits`` ships with scikit-learn. The rest of the example support
code is one job per module: augmentations in ``_digits_augment``, losses in ``_digits_losses``, the
encoder and its LightningModule (the paper's five methods) in ``_digits_model``, correlation statistics
in ``_digits_stats``.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------- data


def load_digits_tensors(classes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """Return scikit-learn's 1,797 digits as float32 images ``(N, 1, 8, 8)`` in [0, 1] and int64 labels.

    Args:
        classes: optional digits (0..9) to keep; ``None`` keeps all ten.

    Raises:
        ValueError: If ``classes`` is empty or holds a value outside 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if classes is None:
        return images, labels
    wanted = [int(c) for c in classes]
    if not wanted or any(c not in range(10) for c in wanted):
        raise ValueError(f"`classes` must be a non-empty sequence of digits 0..9, got {list(classes)!r}.")
    keep = torch.isin(labels, torch.tensor(wanted))
    return images[keep], labels[keep]


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[Tensor, ...]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into disjoint parts of the given ``fractions``.

    Part boundaries are ``round(n * cumsum(fractions))``; with fractions summing to 1 every index is used.

    Raises:
        ValueError: If ``n < 1``, a fraction is not positive, or the fractions sum to more than 1.
    """
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"`fractions` must be positive and sum to at most 1, got {tuple(fractions)}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cumulative = torch.tensor(fractions, dtype=torch.float64).cumsum(0).tolist()
    bounds = [0] + [min(n, round(n * c)) for c in cumulative]
    return tuple(order[lo:hi] for lo, hi in itertools.pairwise(bounds))


def holdout_split(n: int, probe_size: int, val_fraction: float = 0.15, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle ``range(n)`` with ``seed`` into disjoint ``(train, val, probe)`` indices.

    The probe gets exactly ``probe_size`` indices, validation ``round(n * val_fraction)`` (possibly 0),
    training the rest. The same ``(n, probe_size, val_fraction, seed)`` always gives the same split.

    Raises:
        ValueError: If ``probe_size < 1``, ``val_fraction`` is outside [0, 1), or no training index is left.
    """
    n_val = round(n * val_fraction) if 0 <= val_fraction < 1 else -1
    if probe_size < 1 or n_val < 0 or probe_size + n_val >= n:
        raise ValueError(
            f"`probe_size` ({probe_size}) and `val_fraction` ({val_fraction}) must leave training data out of"
            f" {n} samples, with probe_size >= 1 and 0 <= val_fraction < 1."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[probe_size + n_val :], order[probe_size : probe_size + n_val], order[:probe_size]


# ---------------------------------------------------------------- embeddings and downstream score


@torch.no_grad()

def all_digits_split(probe_size: int, seed: int) -> dict[str, Tensor]:
    """``train_digits.py``'s split of all ten digits: training, 15% validation, a held-out probe (by ``seed``)."""
    images, labels = load_digits_tensors()
    train, val, probe = holdout_split(len(images), probe_size, val_fraction=0.15, seed=seed)
    return {
        "train_x": images[train],
        "train_y": labels[train],
        "val_x": images[val],
        "val_y": labels[val],
        "probe_x": images[probe],
    }

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


# ---------------------------------------------------------------- quiet Lightning


def quiet_trainer(max_epochs: int, loader: Any, **settings: Any) -> pl.Trainer:
    """A CPU ``Trainer`` for the studies' many small fits: no logger, checkpoints, progress bar or summary.

    ``settings`` add to or override these (``callbacks=...``, ``num_sanity_val_steps=0``...).
    """
    defaults = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": len(loader),
    }
    return pl.Trainer(**{**defaults, **settings})


def quiet_lightning() -> None:
    """Silence Lightning's start-up banner and the warnings that tiny CPU runs on in-memory data always raise."""
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        ".*does not have many workers.*",
        ".*is smaller than the logging interval.*",
        ".*GPU available but not used.*",
        ".*LeafSpec.*is deprecated.*",
        ".*defined a `validation_step` but have no `val_dataloader`.*",  # pytorch_lightning's _pytree on recent torch
    ):
        warnings.filterwarnings("ignore", message=message)
