"""A tiny supervised LightningModule and data for the callback tests, under both Lightning namespaces."""

from __future__ import annotations

import lightning.pytorch as L
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

#: The two Lightning front doors, by name.
NAMESPACES = {"pytorch_lightning": pl, "lightning.pytorch": L}


class TinyEncoderSteps:
    """Conv + BatchNorm + Dropout encoder with a classifier head; forward returns the representation.

    The steps of the tiny model, mixed into a LightningModule of either namespace below.
    """

    def __init__(self, lr: float = 0.05, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4, momentum=bn_momentum),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(4 * 8 * 8, 12),
        )
        self.head = nn.Linear(12, 3)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.head(self(x)), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.head(self(x)), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class TinyEncoder(TinyEncoderSteps, pl.LightningModule):
    """The tiny model as a ``pytorch_lightning.LightningModule``."""


class UnifiedTinyEncoder(TinyEncoderSteps, L.LightningModule):
    """The tiny model as a ``lightning.pytorch.LightningModule``."""


#: The tiny model of each namespace.
TINY_ENCODERS = {"pytorch_lightning": TinyEncoder, "lightning.pytorch": UnifiedTinyEncoder}


class NoValidationEncoder(TinyEncoder):
    """The same model without a validation_step."""

    validation_step = pl.LightningModule.validation_step


def digits_like_data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    images = torch.rand(n, 1, 8, 8, generator=generator) * 0.5
    images[:, 0, :, :3] += 0.4 * (labels == 0).float().view(-1, 1, 1)
    images[:, 0, :3, :] += 0.4 * (labels == 1).float().view(-1, 1, 1)
    return images.clamp(0, 1), labels


def loaders(n: int = 96, batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    images, labels = digits_like_data(n)
    train = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(*digits_like_data(48, seed=1)), batch_size=batch_size)
    return train, val


def trainer(tmp_path, namespace: str = "pytorch_lightning", **kwargs) -> pl.Trainer:
    settings = {
        "max_epochs": 3,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
        "num_sanity_val_steps": 0,
    }
    settings.update(kwargs)
    return NAMESPACES[namespace].Trainer(**settings)
