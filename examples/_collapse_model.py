"""Encoders built to fail: a SimSiam-like loss without stop-gradient (dimensional collapse).

:class:`SimSiamModule` trains a data set's encoder (``_data.DATASETS``, default the digits) with
SimSiam's symmetric negative cosine similarity between ``predictor(z1)`` and ``z2`` of two augmented
views. With ``stop_gradient=False`` (the default here) nothing keeps the two branches from agreeing on a
constant direction, and the representation collapses; with ``stop_gradient=True`` it is SimSiam proper
(Chen & He, 2021). ``forward`` returns the encoder's representation ``z`` (not the predictor's output),
which is what RMQM, RankMe and alpha-ReQ measure.

The diverging runs need no class of their own: they are :class:`~_methods.EncoderModule` with a far
too high learning rate (see ``collapse_explore.py``).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from _data import get_dataset
from _methods import OPTIMIZERS, make_optimizer
from torch import Tensor, nn


def negative_cosine(p: Tensor, z: Tensor, stop_gradient: bool) -> Tensor:
    """Mean of ``-cos(p, z)`` over the batch; ``z`` is detached when ``stop_gradient``."""
    return -F.cosine_similarity(p, z.detach() if stop_gradient else z, dim=1).mean()


class SimSiamModule(pl.LightningModule):
    """SimSiam-like training of data set ``dataset``'s encoder; ``stop_gradient=False`` makes it collapse.

    Loss: ``(negative_cosine(h(z1), z2) + negative_cosine(h(z2), z1)) / 2`` with ``h`` a bottleneck MLP
    predictor (``d -> predictor_dim -> d``, BatchNorm and ReLU in the middle) and ``z1``, ``z2`` the
    representations of two augmented views.

    Raises:
        ValueError: If ``optimizer`` is not one of ``OPTIMIZERS``.
    """

    def __init__(
        self,
        embedding_dim: int = 64,
        optimizer: str = "adam",
        lr: float = 1e-3,
        stop_gradient: bool = False,
        predictor_dim: int = 16,
        dataset: str = "digits",
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}.")
        self.data = get_dataset(dataset)
        self.save_hyperparameters()
        self.encoder = self.data.encoder(embedding_dim)
        self.predictor = nn.Sequential(
            nn.Linear(embedding_dim, predictor_dim, bias=False),
            nn.BatchNorm1d(predictor_dim),
            nn.ReLU(),
            nn.Linear(predictor_dim, embedding_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _loss(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        v1, v2 = self.data.two_views(x, generator)
        z1, z2 = self(v1), self(v2)
        stop = self.hparams.stop_gradient
        return (negative_cosine(self.predictor(z1), z2, stop) + negative_cosine(self.predictor(z2), z1, stop)) / 2

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(batch[0], generator=None)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        generator = torch.Generator(device=batch[0].device).manual_seed(batch_idx)  # fixed views per batch
        loss = self._loss(batch[0], generator)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.parameters(), self.hparams.optimizer, self.hparams.lr)
