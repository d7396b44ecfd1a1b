"""MNIST-1D (Greydanus & Kobak, 2020), generated locally by the ``mnist1d`` package, scaled to [0, 1].

``mnist1d.data.make_dataset(get_dataset_args())`` builds the standard set from its ten 1-D digit
templates (padding, dilation, scaling, translation, correlated and i.i.d. noise, shear, subsampling) with
the package's seed 42: 5,000 signals of length 40, 500 per class, standardised to mean 0 and standard
deviation 1 over the whole set. No download (``get_dataset`` would fetch a pickle; it is not used).

The studies use all 5,000 signals (the package's train and test parts, in that order) as one pool, shaped
``(5000, 1, 40)`` for 1-D convolutions, and scale them to [0, 1] with one fixed rule: min-max over every
value of the pool, ``(x - min) / (max - min)`` (min -5.48, max 4.53 with mnist1d 0.0.2), which maps the
standardised signals to mean 0.55 and standard deviation 0.10. Making it takes about 8 s on one core;
:func:`load_mnist1d` caches the result. The generator reseeds numpy's and Python's global random
streams; their states are restored afterwards.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from _data_cache import cached
from torch import Tensor

LENGTH = 40


def make_mnist1d() -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST-1D signals, float32 ``(5000, 1, 40)`` min-max scaled to [0, 1], and int64 labels."""
    from mnist1d.data import get_dataset_args, make_dataset

    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002 - mnist1d reseeds them
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float64)
    y = np.concatenate([data["y"], data["y_test"]])
    x = (x - x.min()) / (x.max() - x.min())
    return torch.as_tensor(x, dtype=torch.float32)[:, None, :], torch.as_tensor(y, dtype=torch.int64)


def load_mnist1d(cache_dir: Path | None) -> tuple[Tensor, Tensor]:
    """:func:`make_mnist1d`, kept in ``cache_dir`` (``None``: no cache) after the first call."""
    from importlib.metadata import version

    return cached(cache_dir, f"mnist1d-{version('mnist1d')}-minmax", make_mnist1d)
