"""A LightningModule that no example defines, for the ``rmqm score`` tests (imported by ``--module``)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from rmqm_callback import InputAlteration


def normalise(inputs: torch.Tensor) -> torch.Tensor:
    """The model's input normalisation, given to the callback as ``preprocess`` (recorded by import path)."""
    return (inputs - 0.5) / 0.25


class MLPEncoder(pl.LightningModule):
    """An MLP whose ``body`` is the representation and whose ``head`` classifies; saves its hyperparameters."""

    def __init__(self, hidden: int = 10, lr: float = 0.2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(normalise(x)), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(normalise(x)), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class NeedsAnArgument(pl.LightningModule):
    """A module whose ``__init__`` needs an argument that checkpoints of :class:`MLPEncoder` do not hold."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Linear(width, width)


class Dim(InputAlteration):
    """Darkens by ``strength`` per level; its ``init_args`` leave ``strength`` out (so it cannot be rebuilt)."""

    name = "dim"

    def __init__(self, levels: int = 4, strength: float = 0.1) -> None:
        super().__init__(levels)
        self.strength = strength

    def alter(self, inputs: torch.Tensor, indices: torch.Tensor, level: int) -> torch.Tensor:
        return inputs * (1 - self.strength * level / self.levels)
