"""PGD written directly from the paper's eq. 5 plus projection: the yardstick for the package's one-run PGD."""

from __future__ import annotations

import torch


def naive_pgd(model, x, steps, step_size, radius, clip, loss_fn):
    """PGD from scratch for ``steps`` steps, written directly from the paper's eq. 5 plus projection."""
    current = x.clone()
    for _ in range(steps):
        current = current.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(loss_fn(model(current)), current)
        with torch.no_grad():
            current = current + step_size * gradient.sign()
            current = x + (current - x).clamp(-radius, radius)
            if clip is not None:
                current = current.clamp(*clip)
    return current.detach()
