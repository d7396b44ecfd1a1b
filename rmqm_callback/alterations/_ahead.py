"""Make the next item on a helper thread while the caller works on the current one (CPU input pipelining).

Input alterations such as white noise cost a few percent of a small encoder's forward pass on a
CPU. When torch's intra-op threads leave a core idle, making the next levels' inputs on that
core while the model embeds the current ones hides that cost, the way ``DataLoader`` workers hide
data loading during training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")
Made = TypeVar("Made")


def idle_cores() -> int:
    """Cores this process may run on beyond torch's intra-op threads (0 or less: none idle).

    Examples:
        >>> isinstance(idle_cores(), int)
        True

    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        usable = os.cpu_count() or 1
    return usable - torch.get_num_threads()


def made_ahead(make: Callable[[Item], Made], items: Sequence[Item]) -> Generator[Made, None, None]:
    """Yield ``make(item)`` for every item in order, making the next one on a helper thread meanwhile.

    ``make`` runs on one helper thread, one call at a time and in order, so it must not rely on
    thread-local state of the caller (grad mode, autocast): it sets what it needs itself. An
    exception raised by ``make`` is raised here, when its item is due. Closing the iterator early
    waits for the call in flight and makes nothing more.

    Examples:
        >>> list(made_ahead(lambda x: x * x, [1, 2, 3]))
        [1, 4, 9]

    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmqm-ahead") as helper:
        pending = helper.submit(make, items[0])
        for item in items[1:]:
            current = pending.result()
            pending = helper.submit(make, item)
            yield current
        yield pending.result()
