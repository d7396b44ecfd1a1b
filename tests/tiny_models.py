"""Small models and inputs shared by the tests of ``score()`` and of the helper thread."""

from __future__ import annotations

import torch
from torch import nn

N, LEVELS = 20, 6


def probe_inputs(n: int = N, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def mlp(seed: int = 0, out: int = 6) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.Tanh(), nn.Linear(10, out)).double()


class Recorder(nn.Module):
    """Records the training flag it sees in forward; optionally raises on a given call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.seen: list[bool] = []
        self.fail_on_call = fail_on_call

    def forward(self, x):
        self.seen.append(self.training)
        if self.fail_on_call is not None and len(self.seen) == self.fail_on_call:
            raise RuntimeError("boom inside forward")
        return x


def mixed_model(fail_on_call=None) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), Recorder(fail_on_call), nn.Linear(8, 4)
    ).double()
    model.train()
    model[1].eval()
    model[3].eval()  # dropout already off
    # non-trivial running statistics
    model[2].running_mean.uniform_(-1, 1)
    model[2].running_var.uniform_(0.5, 2)
    return model


def module_modes(model):
    return [(name, module.training) for name, module in model.named_modules()]
