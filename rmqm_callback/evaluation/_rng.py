"""Leave every global random stream as it was: torch's (CPU and the device's), Python's ``random`` and NumPy's.

The callback reads user data (a Dataset's random transforms, a ``val_dataloader()`` hook) and runs
user code (an alteration that draws from torch's stream) as a guest: whatever they draw must not
change what the training run draws next.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def untouched_random_streams(device: torch.device | None = None) -> Iterator[None]:
    """Restore torch's CPU (and ``device``'s CUDA), Python's and NumPy's global random states on exit.

    Examples:
        >>> state = random.getstate()
        >>> with untouched_random_streams():
        ...     _ = random.random(), np.random.rand(), torch.rand(1)
        >>> random.getstate() == state
        True

    """
    cuda_devices = [device] if device is not None and device.type == "cuda" else []
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (the legacy global stream is the one to keep)
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
