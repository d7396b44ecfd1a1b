"""scikit-learn's bundled 8x8 digits (no download), as float32 images in [0, 1]: the studies' first data set.

``sklearn.datasets.load_digits`` gives 1,797 images of 8x8 pixels with values 0..16; they are divided
by 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor


def load_digits_tensors(classes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """Return scikit-learn's 1,797 digits as float32 images ``(N, 1, 8, 8)`` in [0, 1] and int64 labels.

    Args:
        classes: optional digits (0..9) to keep; ``None`` keeps all ten.

    Raises:
        ValueError: If ``classes`` is empty or holds a value outside 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if classes is None:
        return images, labels
    wanted = [int(c) for c in classes]
    if not wanted or any(c not in range(10) for c in wanted):
        raise ValueError(f"`classes` must be a non-empty sequence of digits 0..9, got {list(classes)!r}.")
    keep = torch.isin(labels, torch.tensor(wanted))
    return images[keep], labels[keep]


def load_digits_all(cache_dir: Path | None = None) -> tuple[Tensor, Tensor]:
    """All 1,797 digits (bundled with scikit-learn: nothing to cache, ``cache_dir`` is unused)."""
    return load_digits_tensors()
