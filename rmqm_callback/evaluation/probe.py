"""A fixed, held-out probe set, read in blocks of consecutive global indices.

A probe can be a tensor of inputs, an ``(inputs, labels)`` pair, a ``Dataset`` whose items are
inputs or ``(input, label, ...)`` tuples, or a ``DataLoader`` yielding such batches. Probe ``i``
is the i-th sample in that order, and alterations are keyed by ``i``.

:meth:`Probe.blocks` cuts the index range into blocks ``[kB, (k+1)B)`` and gives block ``k`` to
process ``k mod world_size``: each process reads a disjoint shard, nothing is repeated or padded
(unlike ``DistributedSampler``), and a batch holds the same probes whatever the number of
processes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler

from rmqm_callback.alterations.base import ProbeBatch
from rmqm_callback.evaluation._rng import untouched_random_streams

#: The most samples read from a probe source of unknown length: an endless loader fails, not hangs.
PROBE_READ_LIMIT = 100_000
#: The most bytes of inputs read from a probe source of unknown length.
PROBE_READ_BYTES = 4 * 2**30


def _split_item(item: Any, what: str) -> tuple[Tensor, Tensor | None]:
    """Split a sample or batch into ``(inputs, labels-or-None)``."""
    if isinstance(item, Mapping):
        raise TypeError(
            f"The probe's {what} is a dict (keys {sorted(item)[:5]}); RMQM reads a tensor or an"
            " (inputs, labels, ...) tuple. Wrap the data, e.g. TensorDataset(inputs, labels)."
        )
    if isinstance(item, (tuple, list)):
        if len(item) == 0:
            raise ValueError(f"The probe's {what} is an empty {type(item).__name__}.")
        inputs, labels = item[0], (item[1] if len(item) > 1 else None)
    else:
        inputs, labels = item, None
    if not isinstance(inputs, Tensor):
        inputs = torch.as_tensor(inputs)
    if labels is not None and not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):  # file names, ragged targets...: not labels RMQM can use
            labels = None
    return inputs, labels


def _blocks_for(rank: int, world_size: int, size: int, batch_size: int) -> range:
    """Block indices of process ``rank``: ``rank, rank + world_size, ...`` of ``ceil(size / batch_size)``."""
    return range(rank, -(-size // batch_size), world_size)


class Probe:
    """Probe inputs (and optional labels) held as tensors.

    Args:
        inputs: ``(N, ...)`` tensor of probe inputs.
        labels: ``(N, ...)`` tensor of labels or ``None``.

    Raises:
        TypeError: ``inputs`` or ``labels`` is not a tensor.
        ValueError: no probes, or labels of another length.

    Examples:
        >>> import torch
        >>> probe = Probe(torch.zeros(5, 3))
        >>> [batch.indices.tolist() for batch in probe.blocks(2, rank=0, world_size=2)]
        [[0, 1], [4]]

    """

    def __init__(self, inputs: Tensor, labels: Tensor | None = None) -> None:
        if not isinstance(inputs, Tensor):
            raise TypeError(f"`probe` inputs must be a tensor, got {type(inputs).__name__}.")
        if inputs.ndim == 0 or inputs.shape[0] == 0:
            raise ValueError(f"`probe` is empty: inputs of shape {tuple(inputs.shape)}.")
        if inputs.device.type == "meta":
            raise ValueError(
                f"`probe` inputs of shape {tuple(inputs.shape)} are on the meta device, which holds no data;"
                " pass real tensors (e.g. built on 'cpu')."
            )
        if labels is not None:
            if not isinstance(labels, Tensor):
                raise TypeError(f"`probe` labels must be a tensor, got {type(labels).__name__}.")
            if labels.shape[:1] != inputs.shape[:1]:
                raise ValueError(f"`probe` has {inputs.shape[0]} inputs but labels of shape {tuple(labels.shape)}.")
        self.inputs = inputs
        self.labels = labels
        #: (inputs, labels, digest) once fingerprinted (see rmqm_callback.lightning._probe_state.fingerprint)
        self._fingerprint: tuple[Tensor, Tensor | None, str] | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def num_blocks(self, batch_size: int) -> int | None:
        """Number of blocks of ``batch_size`` probes."""
        return -(-len(self) // batch_size)

    def blocks(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[ProbeBatch]:
        """Yield this process's blocks of consecutive probes, in order."""
        for block in _blocks_for(rank, world_size, len(self), batch_size):
            start, stop = block * batch_size, min((block + 1) * batch_size, len(self))
            labels = None if self.labels is None else self.labels[start:stop]
            yield ProbeBatch(torch.arange(start, stop), self.inputs[start:stop], labels)


class DatasetProbe(Probe):
    """A map-style ``Dataset`` read item by item, one block at a time (nothing is held in memory)."""

    def __init__(self, dataset: Dataset) -> None:
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError as error:
            raise TypeError("`probe` Dataset must have a length; pass a DataLoader for iterable data.") from error
        if size == 0:
            raise ValueError("`probe` is an empty Dataset.")
        self.dataset = dataset
        self._size = size

    def __len__(self) -> int:
        return self._size

    def blocks(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[ProbeBatch]:
        """Yield this process's blocks, stacking the items of each block."""
        for block in _blocks_for(rank, world_size, len(self), batch_size):
            indices = torch.arange(block * batch_size, min((block + 1) * batch_size, len(self)))
            items = [_split_item(self.dataset[int(i)], "item") for i in indices]
            inputs = torch.stack([inputs for inputs, _ in items])
            labels = _stacked([labels for _, labels in items])
            yield ProbeBatch(indices, inputs, labels)


class LoaderProbe(Probe):
    """A ``DataLoader`` read in order and re-cut into blocks of ``batch_size`` probes."""

    def __init__(self, loader: DataLoader) -> None:
        if isinstance(getattr(loader, "sampler", None), RandomSampler):
            warnings.warn(
                "The probe DataLoader shuffles: probe indices (and so the alterations they are keyed by)"
                " change on every pass. Use shuffle=False for a fixed probe.",
                UserWarning,
                stacklevel=3,
            )
        self.loader = loader

    def __len__(self) -> int:
        try:
            return len(self.loader.dataset)  # type: ignore[arg-type]
        except TypeError as error:
            raise TypeError("The probe DataLoader's dataset has no length; it is read to its end.") from error

    def num_blocks(self, batch_size: int) -> int | None:
        """Number of blocks, or ``None`` when the dataset has no length (an iterable dataset)."""
        try:
            return -(-len(self) // batch_size)
        except TypeError:
            return None

    def blocks(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[ProbeBatch]:
        """Yield this process's blocks, regrouping the loader's batches.

        Raises:
            ValueError: the loader yields no sample, or (when its length is unknown) more than
                :data:`PROBE_READ_LIMIT` samples or :data:`PROBE_READ_BYTES` bytes of inputs.

        """
        batches: Iterator[tuple[Tensor, Tensor | None]] = (_split_item(batch, "batch") for batch in self.loader)
        if self.num_blocks(batch_size) is None:
            batches = _bounded(batches)
        block = -1
        for block, (inputs, labels) in enumerate(_regroup(batches, batch_size)):
            if block % world_size == rank:
                start = block * batch_size
                yield ProbeBatch(torch.arange(start, start + inputs.shape[0]), inputs, labels)
        if block < 0:
            raise ValueError("`probe` DataLoader yielded no samples.")


def _bounded(batches: Iterable[tuple[Tensor, Tensor | None]]) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``batches``, failing once they hold more than :data:`PROBE_READ_LIMIT` samples or :data:`PROBE_READ_BYTES`."""
    samples = size = 0
    for inputs, labels in batches:
        samples += inputs.shape[0]
        size += inputs.numel() * inputs.element_size()
        if samples > PROBE_READ_LIMIT or size > PROBE_READ_BYTES:
            raise ValueError(
                f"The probe DataLoader has no length and has yielded {samples} samples ({size / 2**20:.0f} MiB) so far,"
                f" more than a probe may hold ({PROBE_READ_LIMIT} samples, {PROBE_READ_BYTES // 2**30} GiB): is its"
                " dataset endless? A probe is a fixed, finite set: pass a finite DataLoader (e.g. over"
                " itertools.islice of the stream), a tensor, or probe=<int> for the first n samples."
            )
        yield inputs, labels


def _stacked(labels: list[Tensor | None]) -> Tensor | None:
    """The items' labels as one tensor, or ``None`` where some have none or they do not stack (ragged)."""
    if any(label is None for label in labels):
        return None
    try:
        return torch.stack(labels)  # type: ignore[arg-type]
    except RuntimeError:
        return None


def _concat(parts: list[Tensor | None]) -> Tensor | None:
    return None if any(part is None for part in parts) else torch.cat(parts)  # type: ignore[arg-type]


def _regroup(batches: Iterable[tuple[Tensor, Tensor | None]], size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Regroup a stream of ``(inputs, labels)`` batches into batches of exactly ``size`` (the last may be short)."""
    inputs_parts: list[Tensor] = []
    labels_parts: list[Tensor | None] = []
    buffered = 0
    for inputs, labels in batches:
        inputs_parts.append(inputs)
        labels_parts.append(labels)
        buffered += inputs.shape[0]
        while buffered >= size:
            all_inputs, all_labels = torch.cat(inputs_parts), _concat(labels_parts)
            yield all_inputs[:size], None if all_labels is None else all_labels[:size]
            inputs_parts = [all_inputs[size:]]
            labels_parts = [None if all_labels is None else all_labels[size:]]
            buffered -= size
    if buffered > 0:
        yield torch.cat(inputs_parts), _concat(labels_parts)


def as_probe(probe: Any) -> Probe:
    """Wrap a tensor, an ``(inputs, labels)`` pair, a ``Dataset`` or a ``DataLoader`` as a :class:`Probe`.

    Raises:
        TypeError: ``probe`` is none of those.
        ValueError: ``probe`` is empty or its labels do not match its inputs.

    """
    if isinstance(probe, Probe):
        return probe
    if isinstance(probe, Tensor):
        return Probe(probe)
    if isinstance(probe, (tuple, list)) and len(probe) == 2 and isinstance(probe[0], Tensor):
        return Probe(probe[0], probe[1])
    if isinstance(probe, DataLoader):
        return LoaderProbe(probe)
    if isinstance(probe, IterableDataset):
        raise TypeError("`probe` is an IterableDataset: pass DataLoader(dataset, batch_size=...) instead.")
    if isinstance(probe, Dataset):
        return DatasetProbe(probe)
    raise TypeError(
        "`probe` must be a tensor, an (inputs, labels) pair of tensors, a Dataset or a DataLoader;"
        f" got {type(probe).__name__}."
    )


def materialize(probe: Probe, limit: int | None = None) -> Probe:
    """Read ``probe`` once (its first ``limit`` samples if given) into an in-memory :class:`Probe`.

    Reading leaves the global random streams (torch's, Python's, NumPy's) as they were, although
    a ``DataLoader`` draws its base seed from torch's and a ``Dataset`` may draw for random transforms.
    """
    if type(probe) is Probe and limit is None:
        return probe
    batches = []
    taken = 0
    with untouched_random_streams():
        for batch in probe.blocks(batch_size=1024 if limit is None else min(limit, 1024)):
            batches.append(batch)
            taken += batch.inputs.shape[0]
            if limit is not None and taken >= limit:
                break
    labels = None
    if all(batch.labels is not None for batch in batches):
        labels = torch.cat([batch.labels for batch in batches])[:limit]  # type: ignore[misc]
    return Probe(torch.cat([batch.inputs for batch in batches])[:limit], labels)
