"""The studies' encoder families, one per data set: ``backbone`` gives the ``(B, embedding_dim)`` representation.

* :class:`DigitsEncoder`: a small LeNet-like conv net for 1x8x8 digits;
* :class:`SignalEncoder`: the same pattern in 1-D for 1x40 MNIST-1D signals;
* :class:`LeNet5Encoder`: LeNet-5's layout (conv 6@5x5, pool, conv 16@5x5, pool, 120, 84) with batch
  norm and ReLU, for 1x28x28 glyphs.

Each has an optional ``classifier`` (a linear head on the representation) when ``num_classes`` is given;
``forward`` returns the representation, which is what RMQM measures.
"""

from __future__ import annotations

from torch import Tensor, nn


class Encoder(nn.Module):
    """A ``backbone`` from :meth:`build_backbone` and an optional linear ``classifier`` on its output."""

    def __init__(self, embedding_dim: int = 64, num_classes: int | None = None) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be >= 1, got {embedding_dim}.")
        self.embedding_dim = embedding_dim
        self.backbone = self.build_backbone(embedding_dim)
        self.classifier = nn.Linear(embedding_dim, num_classes) if num_classes else None

    def build_backbone(self, embedding_dim: int) -> nn.Module:
        """The layers from an input batch to ``(B, embedding_dim)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def _conv_block_1d(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, 5, padding=2, bias=False), nn.BatchNorm1d(c_out), nn.ReLU())


class DigitsEncoder(Encoder):
    """LeNet-like encoder for 1x8x8 digits: three 3x3 conv blocks (16, 32, 64 channels), two 2x2 max-pools."""

    def build_backbone(self, embedding_dim: int) -> nn.Module:
        return nn.Sequential(
            _conv_block(1, 16),
            _conv_block(16, 32),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            _conv_block(32, 64),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, embedding_dim),
        )


class SignalEncoder(Encoder):
    """1-D conv encoder for 1x40 signals: three conv blocks of width 5 (32, 32, 64 channels), two max-pools."""

    def build_backbone(self, embedding_dim: int) -> nn.Module:
        return nn.Sequential(
            _conv_block_1d(1, 32),
            _conv_block_1d(32, 32),
            nn.MaxPool1d(2),  # 40 -> 20
            _conv_block_1d(32, 64),
            nn.MaxPool1d(2),  # 20 -> 10
            nn.Flatten(),
            nn.Linear(64 * 10, embedding_dim),
        )


class LeNet5Encoder(Encoder):
    """LeNet-5-like encoder for 1x28x28 images: conv 6@5x5 (padded), pool, conv 16@5x5, pool, 120, 84, d."""

    def build_backbone(self, embedding_dim: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2, bias=False),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(6, 16, 5, bias=False),  # 14 -> 10
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 10 -> 5
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, embedding_dim),
        )
