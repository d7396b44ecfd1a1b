"""Support for the within-run study: per-epoch snapshots, a mechanism measure, checkpoint selection.

* :class:`EpochSnapshots` keeps a copy of the weights before training (epoch 0) and at every epoch end.
* :func:`jacobian_participation_ratio` and :func:`representation_participation_ratio` measure how many
  directions the encoder uses, locally (input Jacobian) and globally (the probe's embeddings).
* :func:`select_epoch` is the epoch a ``ModelCheckpoint(mode=..., save_top_k=1)`` keeps, and
  :func:`run_statistics` sums one run up: Spearman of each score with accuracy and epoch, and what keeping
  the checkpoint each score picks costs in accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from _stats import spearman
from pytorch_lightning.callbacks import Callback
from torch import Tensor, nn
from typing_extensions import override

# ---------------------------------------------------------------- snapshots


class EpochSnapshots(Callback):
    """Copy the module's ``state_dict()`` before the first step (epoch 0) and after every training epoch.

    ``snapshots[e]`` holds the weights after ``e`` epochs and ``train_loss[e]`` that epoch's mean training
    loss (NaN for epoch 0). The copies live in memory; nothing else about the fit changes.
    """

    def __init__(self) -> None:
        self.snapshots: dict[int, dict[str, Tensor]] = {}
        self.train_loss: dict[int, float] = {}

    @staticmethod
    def _copy(pl_module: pl.LightningModule) -> dict[str, Tensor]:
        return {key: value.detach().clone() for key, value in pl_module.state_dict().items()}

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.snapshots[0] = self._copy(pl_module)
        self.train_loss[0] = float("nan")

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        self.snapshots[epoch] = self._copy(pl_module)
        loss = trainer.callback_metrics.get("train_loss")
        self.train_loss[epoch] = float(loss) if loss is not None else float("nan")


# ---------------------------------------------------------------- mechanism


def participation_ratio(values: Tensor) -> Tensor:
    r"""Participation ratio :math:`(\sum_k s_k^2)^2 / \sum_k s_k^4` along the last dimension.

    1 when one ``s_k`` carries everything, the number of ``s_k`` when they are all equal.
    """
    squared = values.double() ** 2
    return squared.sum(-1) ** 2 / (squared**2).sum(-1)


def predicted_p_rc(jacobian_pr: np.ndarray) -> np.ndarray:
    r"""First-order P_RC of an encoder whose normalised Jacobian has participation ratio ``jacobian_pr``.

    With fresh isotropic noise per level, a step is :math:`dp = \sigma \sqrt{\sum_k s_k^2 \xi_k^2}`, whose
    relative standard deviation is :math:`1 / \sqrt{2 \, PR}`; two independent steps differ by
    :math:`1 / \sqrt{PR}` of their size in standard deviation, and :math:`E|N(0, 1)| = \sqrt{2 / \pi}`:

    .. math::
        P_{RC} \approx \sqrt{2 / \pi} \, / \sqrt{PR}

    No constant is fitted; clipping, the nonlinearity and the growth of sigma from level to level are ignored.
    """
    return np.sqrt(2.0 / np.pi) / np.sqrt(np.asarray(jacobian_pr, dtype=np.float64))


def normalized_jacobians(model: nn.Module, images: Tensor) -> Tensor:
    """Jacobians ``(N, d, pixels)`` of the L2-normalised representation ``f(x) / |f(x)|`` at each image.

    Computed in eval mode (each image independent of the others), one batched backward pass per output
    dimension; the model's mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.detach().clone().requires_grad_(True)
            z = F.normalize(model(x), dim=1)
            d = z.shape[1]
            basis = torch.eye(d, dtype=z.dtype).unsqueeze(1).expand(d, *z.shape)
            (grads,) = torch.autograd.grad(z, x, basis, is_grads_batched=True)  # (d, N, *pixels)
    finally:
        model.train(was_training)
    return grads.flatten(2).transpose(0, 1)


def jacobian_participation_ratio(model: nn.Module, images: Tensor) -> float:
    """Mean over ``images`` of the participation ratio of the singular values of the normalised Jacobian."""
    return float(participation_ratio(torch.linalg.svdvals(normalized_jacobians(model, images).double())).mean())


def representation_participation_ratio(embeddings: Tensor) -> float:
    """Participation ratio of the singular values of the centred, L2-normalised ``(N, d)`` embeddings."""
    z = F.normalize(embeddings.double(), dim=1)
    return float(participation_ratio(torch.linalg.svdvals(z - z.mean(0, keepdim=True))))


# ---------------------------------------------------------------- selection and per-run statistics


def select_epoch(epochs: Sequence[int], values: Sequence[float], mode: str, first: int = 1) -> int:
    """The epoch ``ModelCheckpoint(mode=mode, save_top_k=1)`` keeps among ``epochs >= first``.

    The checkpoint is replaced only on a strict improvement, so of tied values the earliest epoch wins.

    Raises:
        ValueError: If ``mode`` is not ``"max"`` or ``"min"`` or no epoch is ``>= first``.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"`mode` must be 'max' or 'min', got {mode!r}.")
    kept = [(e, v) for e, v in zip(epochs, values) if e >= first]
    if not kept:
        raise ValueError(f"No epoch >= {first} in {list(epochs)}.")
    sign = 1.0 if mode == "max" else -1.0
    best_epoch, best_value = kept[0][0], sign * kept[0][1]
    for epoch, value in kept[1:]:
        if sign * value > best_value:
            best_epoch, best_value = epoch, sign * value
    return best_epoch


def run_statistics(rows: Sequence[Mapping[str, object]], scores: Mapping[str, str]) -> dict[str, object]:
    """Sum one run (its rows, one per epoch) up for every score (label -> CSV column).

    Returns ``best_epoch`` / ``best_accuracy`` (highest 1-NN accuracy over epochs >= 1), ``last_accuracy``,
    ``first_accuracy`` (the first row's: the random initialisation when epoch 0 is there) and, per score
    label, ``rho_accuracy`` and ``rho_epoch`` (Spearman over all epochs, 0 included) and for each mode
    ``max``/``min`` the kept ``epoch``, its ``accuracy`` and the accuracy it gives up against the best epoch
    (``vs_best``) and against the last checkpoint (``vs_last``).
    """
    rows = sorted(rows, key=lambda row: int(row["epoch"]))
    epochs = [int(row["epoch"]) for row in rows]
    accuracy = np.array([float(row["knn_accuracy"]) for row in rows])
    by_epoch = dict(zip(epochs, accuracy))
    best_epoch = select_epoch(epochs, accuracy, "max")
    summary: dict[str, object] = {
        "best_epoch": best_epoch,
        "best_accuracy": by_epoch[best_epoch],
        "last_epoch": epochs[-1],
        "last_accuracy": by_epoch[epochs[-1]],
        "first_accuracy": by_epoch[epochs[0]],
    }
    for label, column in scores.items():
        values = np.array([float(row[column]) for row in rows])
        entry: dict[str, object] = {
            "rho_accuracy": spearman(values, accuracy),
            "rho_epoch": spearman(values, np.array(epochs, dtype=float)),
        }
        for mode in ("max", "min"):
            kept = select_epoch(epochs, values, mode)
            entry[mode] = {
                "epoch": kept,
                "accuracy": by_epoch[kept],
                "vs_best": by_epoch[best_epoch] - by_epoch[kept],
                "vs_last": by_epoch[epochs[-1]] - by_epoch[kept],
            }
        summary[label] = entry
    return summary
