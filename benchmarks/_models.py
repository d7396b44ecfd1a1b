"""Encoders and probe data for the benchmarks: LeNet-5-like, small ResNet-like, CIFAR ResNet-18 (no torchvision)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling, on 1x28x28 inputs, ending in a d-dimensional embedding."""

    input_shape = (1, 28, 28)

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet-8-like encoder on 3x32x32 inputs: stem, 3 stages of one basic block (16/32/64), pool, linear."""

    input_shape = (3, 32, 32)

    def __init__(self, dim: int = 128, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2)
        )
        self.head = nn.Linear(4 * width, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ResNet18(nn.Module):
    """The standard CIFAR-style ResNet-18: 3x3 stem (64), BasicBlocks [2, 2, 2, 2] of 64/128/256/512, pool, linear.

    On 3x32x32 inputs (the stem keeps 32x32, no max pool); any larger square input works too
    (global average pooling), e.g. 3x224x224. ``dim`` is the output width (10 for CIFAR-10 logits).
    """

    input_shape = (3, 32, 32)

    def __init__(self, dim: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        widths, layers, channels = (64, 128, 256, 512), [], 64
        for stage, width in enumerate(widths):
            for block in range(2):
                layers.append(BasicBlock(channels, width, 2 if stage > 0 and block == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(512, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MLP(nn.Module):
    """A cheap encoder on 1x28x28 inputs (784 -> 256 -> d), for the memory benchmark where only d matters."""

    input_shape = (1, 28, 28)

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


MODELS = {"lenet": LeNet5, "resnet": SmallResNet, "resnet18": ResNet18, "mlp": MLP}


def make_model(name: str, device: torch.device | str = "cpu", seed: int = 0) -> nn.Module:
    """A freshly initialised encoder (fixed seed), in eval mode, on ``device``."""
    torch.manual_seed(seed)
    return MODELS[name]().to(device).eval()


def make_probe(name: str, n: int, seed: int = 1) -> Tensor:
    """``n`` random inputs in [0, 1] of the model's input shape (CPU, float32)."""
    shape = MODELS[name].input_shape
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


class SyntheticImages(Dataset):
    """``n`` random images in [0, 1], each generated from its index when read (nothing is held in memory)."""

    def __init__(self, n: int, shape: tuple[int, ...], seed: int = 1) -> None:
        self.n, self.shape, self.seed = n, tuple(shape), seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        return torch.rand(self.shape, generator=generator)

    def batch(self, start: int, stop: int) -> Tensor:
        return torch.stack([self[i] for i in range(start, stop)])
