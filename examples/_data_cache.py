"""A file cache for the generated data sets: make the tensors once, then read them back.

:func:`cached` keeps ``make()``'s tensors in ``cache_dir/<key>.pt``. The key names everything the data
depend on (recipe version, sizes, seed, the generating packages' versions), so a changed recipe is
made anew instead of read stale. Writes go to a temporary file renamed into place, so two processes
making the same data at once leave one whole file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

#: Where the studies keep generated data unless told otherwise (relative to the working directory).
DEFAULT_CACHE_DIR = Path("outputs/data_cache")


def cached(cache_dir: Path | None, key: str, make: Callable[[], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """``make()``, read from ``cache_dir/<key>.pt`` when it is there, written there when not.

    ``cache_dir=None`` makes the tensors every time and writes nothing.
    """
    if cache_dir is None:
        return make()
    path = Path(cache_dir) / f"{key}.pt"
    if path.is_file():
        return tuple(torch.load(path, weights_only=True))
    tensors = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(list(tensors), temporary)
    os.replace(temporary, path)
    return tensors
