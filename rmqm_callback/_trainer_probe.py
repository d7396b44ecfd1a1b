"""Take a callback's probe from the trainer's data: the first ``n`` validation (else training) samples."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset, Subset

from rmqm_callback.probe import DatasetProbe, LoaderProbe, Probe, materialize


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


def probe_from_trainer(trainer: pl.Trainer, count: int) -> Probe:
    """Process 0 takes the first ``count`` samples and every process receives the same copy.

    Validation data is used when the run validates, else the training data. Reading the data
    does not move the global random number streams (augmentations inside a Dataset may draw).

    Raises:
        ValueError: the trainer has no data loader to take samples from.

    """
    probe = None
    if trainer.is_global_zero:
        source = "validation"
        loader = _first_loader(trainer.val_dataloaders) if trainer.enable_validation else None
        if loader is None:
            source, loader = "training", _first_loader(trainer.train_dataloader)
        if loader is None:
            raise ValueError(
                "RMQMCallback(probe=<int>) takes the first samples of the validation or training data, but the"
                " trainer has no DataLoader; pass the probe as a tensor, Dataset or DataLoader instead."
            )
        probe = _first_samples(loader, count)
        if len(probe) < count:
            rank_zero_warn(f"RMQMCallback: probe={count} but the {source} data has only {len(probe)} samples.")
        probe = (probe.inputs, probe.labels)
    inputs, labels = trainer.strategy.broadcast(probe, src=0)
    return Probe(inputs, labels)
