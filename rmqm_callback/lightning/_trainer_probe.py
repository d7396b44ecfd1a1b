"""Take a callback's int probe from the trainer's data: the first ``n`` validation (or training) samples."""

from __future__ import annotations

from typing import Any, cast

from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset, Subset

from rmqm_callback.evaluation.probe import DatasetProbe, LoaderProbe, Probe, materialize
from rmqm_callback.lightning._namespaces import Trainer


def _first_loader(loaders: Any) -> DataLoader | None:
    """The first DataLoader of what ``trainer.val_dataloaders`` / ``train_dataloader`` hold."""
    if isinstance(loaders, DataLoader):
        return loaders
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)) and loaders:
        return _first_loader(loaders[0])
    return None


def _first_samples(loader: DataLoader, count: int) -> Probe:
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        return materialize(LoaderProbe(loader), limit=count)
    # the dataset itself, in order (the loader may shuffle or be sharded per process), batched by
    # the loader's own collate_fn, so the probe is what the model sees (e.g. uint8 -> float)
    first = Subset(dataset, range(min(count, len(dataset))))
    if loader.batch_sampler is None:  # no automatic batching: items are already batches, or collate per item
        return materialize(DatasetProbe(first))
    batch_size = loader.batch_size or 64  # a custom batch_sampler collates batches of its own size
    ordered = DataLoader(first, batch_size=batch_size, shuffle=False, collate_fn=loader.collate_fn)
    return materialize(LoaderProbe(ordered))


def probe_from_trainer(trainer: Trainer, count: int, source: str) -> Probe:
    """Process 0 takes the first ``count`` samples of the ``source`` data, and every process gets the same copy.

    ``source`` is ``"validation"`` or ``"training"`` (see
    :attr:`~rmqm_callback.lightning._schedule.EvaluationSchedule.source`). Reading the data does not move
    the global random number streams (augmentations inside a Dataset may draw).

    Raises:
        ValueError / TypeError: the trainer has no data loader to take samples from, or its samples
            cannot make a probe; on every process (process 0 sends its error to the others rather
            than leaving them waiting for the probe).

    """
    taken: tuple[Any, Any] | None = None
    failure: tuple[str, str] | None = None
    if trainer.is_global_zero:
        try:
            taken = _take(trainer, count, source)
        except (ValueError, TypeError) as error:
            failure = (type(error).__name__, str(error))
    shared = cast(tuple[Any, Any], trainer.strategy.broadcast((taken, failure), src=0))
    taken, failure = shared
    if failure is not None:
        kind, message = failure
        raise (TypeError if kind == "TypeError" else ValueError)(message)
    inputs, labels = cast(tuple[Any, Any], taken)
    return Probe(inputs, labels)


def _take(trainer: Trainer, count: int, source: str) -> tuple[Any, Any]:
    loaders = trainer.val_dataloaders if source == "validation" else trainer.train_dataloader
    loader = _first_loader(loaders)
    if loader is None:
        raise ValueError(
            f"RMQMCallback(probe={count}) takes the first samples of the {source} data, but the trainer has no"
            " DataLoader for it; pass the probe as a tensor, Dataset or DataLoader instead."
        )
    try:
        probe = _first_samples(loader, count)
    except (ValueError, TypeError) as error:
        message = f"RMQMCallback(probe={count}) could not take the first samples of the {source} data: {error}"
        raise type(error)(message) from error
    if len(probe) < count:
        rank_zero_warn(f"RMQMCallback: probe={count} but the {source} data has only {len(probe)} samples.")
    return probe.inputs, probe.labels
