"""The studies' data sets behind one interface (:class:`DataSet`, by name in :data:`DATASETS`), and their splits.

Every data set is made without a download and gives: inputs scaled to [0, 1] with their labels
(:meth:`DataSet.load`), a split of its classes into ``seen`` ones (training, and the held-out probe RMQM
is measured on) and ``unseen`` ones (the downstream transfer task), an encoder family sized for its
inputs (:meth:`DataSet.encoder`) and the augmentations its contrastive methods train on
(:meth:`DataSet.augment`, :meth:`DataSet.two_views`). The splits every study shares are
:func:`transfer_split` (seen classes for training and the probe, unseen classes cut in two halves for
1-NN) and :func:`all_classes_split` (``train_digits.py``'s: all classes, 15% validation, a probe).

============  ===========================================  ========================  ===================
name          what                                          seen / unseen classes     encoder
============  ===========================================  ========================  ===================
``digits``    scikit-learn's 1,797 8x8 digits              0-4 / 5-9                 ``DigitsEncoder``
``mnist1d``   MNIST-1D, 5,000 signals of length 40         0-4 / 5-9                 ``SignalEncoder``
``glyphs``    5,200 28x28 capital letters, 22 fonts        A-M / N-Z                 ``LeNet5Encoder``
============  ===========================================  ========================  ===================

How each is made: ``_data_digits``, ``_data_mnist1d``, ``_data_glyphs``. Generated sets are cached in
``cache_dir`` (default :data:`~_data_cache.DEFAULT_CACHE_DIR`).
"""

from __future__ import annotations

import functools
import itertools
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from _augment_images import augment
from _augment_signals import augment_signal
from _data_cache import DEFAULT_CACHE_DIR
from _data_digits import load_digits_all
from _data_glyphs import load_glyphs
from _data_mnist1d import load_mnist1d
from _encoders import DigitsEncoder, Encoder, LeNet5Encoder, SignalEncoder
from torch import Tensor

Augment = Callable[[Tensor, "torch.Generator | None"], Tensor]


@dataclass(frozen=True)
class DataSet:
    """One data set of the studies; see the module docstring. Build it once, in :data:`DATASETS`.

    Attributes:
        name: the ``--dataset`` name.
        title: what it is, for reports.
        items: what its examples are, plural ("digits", "signals", "letters"), for reports.
        class_noun: what its classes are called before their names ("digits" 0-4, "classes" 0-4, "letters" A-M).
        class_names: one name per label 0..K-1.
        input_shape: the shape of one input, ``(C, ...)``.
        seen: the classes the encoders train on and the probe is drawn from: the first ``len(seen)`` labels,
            so that they are also the classifier's targets.
        unseen: the other classes: the downstream transfer task.
        loader: ``cache_dir -> (inputs, labels)`` of every example, inputs float32 in [0, 1].
        encoder_class: the encoder family, ``encoder_class(embedding_dim, num_classes)``.
        augmenter: one random view of a batch, ``augmenter(x, generator)``.
        scaling: how the inputs were scaled to [0, 1], for reports.
    """

    name: str
    title: str
    items: str
    class_noun: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    loader: Callable[[Path | None], tuple[Tensor, Tensor]]
    encoder_class: type[Encoder]
    augmenter: Augment
    scaling: str

    def __post_init__(self) -> None:
        if self.seen != tuple(range(len(self.seen))) or set(self.seen) & set(self.unseen):
            raise ValueError(f"{self.name}: `seen` must be labels 0..k-1 and disjoint from `unseen`.")

    def load(self, classes: Sequence[int] | None = None, cache_dir: Path | None = DEFAULT_CACHE_DIR):
        """Inputs float32 ``(N, C, ...)`` in [0, 1] and int64 labels, of ``classes`` only when given, in file order.

        Raises:
            ValueError: If ``classes`` is empty or holds a label the data set does not have.
        """
        inputs, labels = _load_all(self.name, cache_dir)
        if classes is None:
            return inputs, labels
        wanted = [int(c) for c in classes]
        if not wanted or any(c not in range(len(self.class_names)) for c in wanted):
            raise ValueError(
                f"`classes` must be a non-empty sequence of labels 0..{len(self.class_names) - 1} of {self.name},"
                f" got {list(classes)!r}."
            )
        keep = torch.isin(labels, torch.tensor(wanted))
        return inputs[keep], labels[keep]

    def encoder(self, embedding_dim: int, num_classes: int | None = None) -> Encoder:
        """A fresh encoder of this data set's family (weights from torch's global random stream)."""
        return self.encoder_class(embedding_dim, num_classes)

    def augment(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One random view of the batch ``x`` (same shape, in [0, 1])."""
        return self.augmenter(x, generator)

    def two_views(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two independent augmented views of the batch ``x`` (SimCLR-style positives)."""
        return self.augment(x, generator), self.augment(x, generator)

    def describe(self, classes: Sequence[int]) -> str:
        """``classes`` in words: "digits 0-4", "letters A-M"."""
        names = [self.class_names[c] for c in classes]
        contiguous = list(classes) == list(range(classes[0], classes[0] + len(classes)))
        listed = f"{names[0]}-{names[-1]}" if contiguous and len(names) > 2 else ", ".join(names)
        return f"{self.class_noun} {listed}"


DATASETS: dict[str, DataSet] = {
    "digits": DataSet(
        name="digits",
        title="scikit-learn's 8x8 digits",
        items="digits",
        class_noun="digits",
        class_names=tuple(string.digits),
        input_shape=(1, 8, 8),
        seen=(0, 1, 2, 3, 4),
        unseen=(5, 6, 7, 8, 9),
        loader=load_digits_all,
        encoder_class=DigitsEncoder,
        augmenter=augment,
        scaling="pixel values 0..16 divided by 16",
    ),
    "mnist1d": DataSet(
        name="mnist1d",
        title="MNIST-1D (5,000 signals of length 40)",
        items="signals",
        class_noun="classes",
        class_names=tuple(string.digits),
        input_shape=(1, 40),
        seen=(0, 1, 2, 3, 4),
        unseen=(5, 6, 7, 8, 9),
        loader=load_mnist1d,
        encoder_class=SignalEncoder,
        augmenter=augment_signal,
        scaling="min-max over all 5,000 x 40 values of the standardised set",
    ),
    "glyphs": DataSet(
        name="glyphs",
        title="glyphs (28x28 capital letters rendered from 22 fonts)",
        items="letters",
        class_noun="letters",
        class_names=tuple(string.ascii_uppercase),
        input_shape=(1, 28, 28),
        seen=tuple(range(13)),
        unseen=tuple(range(13, 26)),
        loader=load_glyphs,
        encoder_class=LeNet5Encoder,
        augmenter=functools.partial(augment, max_erase=10),
        scaling="8-bit renderings divided by 255, then ink intensity and noise, clipped",
    ),
}


def get_dataset(name: str) -> DataSet:
    """``DATASETS[name]``, with an error that lists the names when there is none."""
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; choose one of {sorted(DATASETS)}.")
    return DATASETS[name]


@functools.lru_cache(maxsize=8)
def _load_all(name: str, cache_dir: Path | None) -> tuple[Tensor, Tensor]:
    return DATASETS[name].loader(cache_dir)


# ---------------------------------------------------------------- splits


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[Tensor, ...]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into disjoint parts of the given ``fractions``.

    Part boundaries are ``round(n * cumsum(fractions))``; with fractions summing to 1 every index is used.

    Raises:
        ValueError: If ``n < 1``, a fraction is not positive, or the fractions sum to more than 1.
    """
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"`fractions` must be positive and sum to at most 1, got {tuple(fractions)}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cumulative = torch.tensor(fractions, dtype=torch.float64).cumsum(0).tolist()
    bounds = [0] + [min(n, round(n * c)) for c in cumulative]
    return tuple(order[lo:hi] for lo, hi in itertools.pairwise(bounds))


def holdout_split(n: int, probe_size: int, val_fraction: float = 0.15, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle ``range(n)`` with ``seed`` into disjoint ``(train, val, probe)`` indices.

    The probe gets exactly ``probe_size`` indices, validation ``round(n * val_fraction)`` (possibly 0),
    training the rest. The same ``(n, probe_size, val_fraction, seed)`` always gives the same split.

    Raises:
        ValueError: If ``probe_size < 1``, ``val_fraction`` is outside [0, 1), or no training index is left.
    """
    n_val = round(n * val_fraction) if 0 <= val_fraction < 1 else -1
    if probe_size < 1 or n_val < 0 or probe_size + n_val >= n:
        raise ValueError(
            f"`probe_size` ({probe_size}) and `val_fraction` ({val_fraction}) must leave training data out of"
            f" {n} samples, with probe_size >= 1 and 0 <= val_fraction < 1."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[probe_size + n_val :], order[probe_size : probe_size + n_val], order[:probe_size]


@functools.lru_cache(maxsize=4)
def transfer_split(
    name: str, probe_size: int, train_size: int | None = None, cache_dir: Path | None = DEFAULT_CACHE_DIR
) -> dict[str, Tensor]:
    """The transfer set-up of the studies on data set ``name``.

    Seen classes: a held-out probe of ``probe_size`` (``holdout_split(seed=0)``) and the training inputs
    (the first ``train_size`` of the rest, in that split's shuffled order, when given). Unseen classes:
    ``fit`` and ``test`` halves (``split_indices(seed=0)``) for the downstream 1-NN accuracy.
    """
    dataset = get_dataset(name)
    inputs, labels = dataset.load(dataset.seen, cache_dir)
    train, _, probe = holdout_split(len(inputs), probe_size, val_fraction=0.0, seed=0)
    if train_size is not None:
        if not 1 <= train_size <= len(train):
            raise ValueError(f"`train_size` must be in 1..{len(train)} for {name}, got {train_size}.")
        train = train[:train_size]
    unseen_inputs, unseen_labels = dataset.load(dataset.unseen, cache_dir)
    fit, test = split_indices(len(unseen_inputs), (0.5, 0.5), seed=0)
    return {
        "train_x": inputs[train],
        "train_y": labels[train],
        "probe_x": inputs[probe],
        "probe_y": labels[probe],
        "fit_x": unseen_inputs[fit],
        "fit_y": unseen_labels[fit],
        "test_x": unseen_inputs[test],
        "test_y": unseen_labels[test],
    }


def all_classes_split(
    name: str, probe_size: int, seed: int, cache_dir: Path | None = DEFAULT_CACHE_DIR
) -> dict[str, Tensor]:
    """``train_digits.py``'s split, of every class of ``name``: training, 15% validation, a held-out probe."""
    inputs, labels = get_dataset(name).load(None, cache_dir)
    train, val, probe = holdout_split(len(inputs), probe_size, val_fraction=0.15, seed=seed)
    return {
        "train_x": inputs[train],
        "train_y": labels[train],
        "val_x": inputs[val],
        "val_y": labels[val],
        "probe_x": inputs[probe],
        "probe_y": labels[probe],
    }
