"""The LightningModule that trains a data set's encoder with one of the paper's five methods.

Methods: cross-entropy, NT-Xent (SimCLR), triplet-supervised (label-mined triplets), triplet-SS (triplets
on augmented views) and triplet-entropy (triplet + cross-entropy); optimizers: Adam, or SGD with Nesterov
momentum. The encoder and the augmentations are the data set's (``_data.DATASETS``; default the digits).
``forward`` returns the representation, which is what RMQM measures.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from _data import get_dataset
from _losses import nt_xent, triplet_loss_batch_hard, triplet_loss_views
from torch import Tensor

METHODS = ("cross-entropy", "nt-xent", "triplet-supervised", "triplet-ss", "triplet-entropy")
SELF_SUPERVISED = ("nt-xent", "triplet-ss")
WITH_CLASSIFIER = ("cross-entropy", "triplet-entropy")
OPTIMIZERS = ("adam", "sgd")


class EncoderModule(pl.LightningModule):
    """Train data set ``dataset``'s encoder with one of the paper's five methods; ``forward`` is the representation.

    Raises:
        ValueError: If ``method``, ``optimizer`` or ``dataset`` is not one of the allowed values.
    """

    def __init__(
        self,
        method: str = "cross-entropy",
        embedding_dim: int = 64,
        optimizer: str = "adam",
        lr: float = 1e-3,
        num_classes: int = 10,
        temperature: float = 0.5,
        margin: float = 0.2,
        dataset: str = "digits",
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}.")
        self.data = get_dataset(dataset)
        self.save_hyperparameters()
        self.encoder = self.data.encoder(embedding_dim, num_classes if method in WITH_CLASSIFIER else None)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _loss(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        method, margin = self.hparams.method, self.hparams.margin
        if method in SELF_SUPERVISED:
            v1, v2 = self.data.two_views(x, generator)
            z1, z2 = self(v1), self(v2)
            if method == "nt-xent":
                return nt_xent(z1, z2, self.hparams.temperature)
            return triplet_loss_views(z1, z2, margin)
        z = self(x)
        if method == "triplet-supervised":
            return triplet_loss_batch_hard(z, y, margin)
        cross_entropy = F.cross_entropy(self.encoder.classifier(z), y)
        if method == "cross-entropy":
            return cross_entropy
        return cross_entropy + triplet_loss_batch_hard(z, y, margin)  # triplet-entropy

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(*batch, generator=None)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        # fixed views per batch, so that val_loss is comparable from epoch to epoch
        generator = torch.Generator(device=x.device).manual_seed(batch_idx)
        loss = self._loss(x, y, generator)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.parameters(), self.hparams.optimizer, self.hparams.lr)


def make_optimizer(parameters: Any, optimizer: str, lr: float) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9: the two optimisers of the paper's grid."""
    if optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True)
