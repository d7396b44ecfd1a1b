"""Every process refuses a set-up when one does, so that none trains on alone and waits for the others.

The fit-start checks run on every process, and most refusals are the same on all of them (the same
probe, model and alterations). Some are not: the guest pass's time limit is measured on each
process's own clock, and a process may be slower than the others. A process that refused stops,
while the others would go on to train and wait at their first collective for a process that is
gone. :func:`agreed` makes the refusal collective: a process that raised raises its own error, and
every other process raises one that names the processes that refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from rmqm_callback.lightning._namespaces import Trainer

Result = TypeVar("Result")


class RefusedElsewhere(RuntimeError):
    """Another process refused the set-up: this one stops too (that process's error says why)."""


def agreed(trainer: Trainer, owner: str, check: Callable[[], Result]) -> Result:
    """``check()`` on every process; if it raises on any, it raises on every one.

    A single process runs ``check()`` as it is. Under several processes every one must call this at
    the same point (it gathers one flag per process).

    Raises:
        Exception: this process's own error from ``check()``.
        RefusedElsewhere: ``check()`` passed here but raised on another process.
    """
    error: Exception | None = None
    result: Result | None = None
    try:
        result = check()
    except Exception as caught:  # every kind: the others must learn that this process stops
        error = caught
    if trainer.world_size > 1:
        flag = torch.tensor([error is not None], dtype=torch.int32, device=trainer.strategy.root_device)
        refused = [rank for rank, value in enumerate(trainer.strategy.all_gather(flag).flatten().tolist()) if value]
        if refused and error is None:
            raise RefusedElsewhere(
                f"{owner}: process(es) {refused} of {trainer.world_size} refused the set-up before training (their"
                " error says why and what to change); this process stops too, rather than train alone and wait."
            )
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
