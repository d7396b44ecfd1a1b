"""What is refused before the guest pass, because no forward pass is needed to know it cannot work.

A model on the meta device (shapes without values), and an alteration that needs more probes in a
batch than some batch of the probe holds: PGD's default contrastive loss needs 2, and the
probes are scored in blocks of ``batch_size``, so a last block of ``N % batch_size == 1`` probe
(or ``batch_size=1``, or a one-sample probe) would leave a probe unmoved, read as a collapse.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain

from torch import nn

from rmqm_callback.alterations import PGD, Alteration


def check_model_has_data(owner: str, model: nn.Module) -> None:
    """Refuse a model with a parameter or buffer on the meta device (shapes without values)."""
    named = chain(model.named_parameters(), model.named_buffers())
    name, tensor = next(((name, tensor) for name, tensor in named if tensor.is_meta), (None, None))
    if tensor is not None:
        raise ValueError(
            f"{owner}: the model's {name!r} of shape {tuple(tensor.shape)} is on the meta device, which holds no data"
            " (a model built under torch.device('meta') or with empty weights); give it real weights first, e.g."
            " model.to_empty(device='cpu') and then model.load_state_dict(state_dict)."
        )


def _batch_fix(num_probes: int, batch_size: int, needed: int) -> str:
    """Settings under which every batch of ``num_probes`` probes holds at least ``needed``."""
    if num_probes < needed:
        return f"a probe of at least {needed} samples"
    # the batch size nearest to the one given whose last batch is full or large enough
    sizes = sorted(range(needed, num_probes + 1), key=lambda size: (abs(size - batch_size), size))
    size = next(size for size in sizes if num_probes % size == 0 or num_probes % size >= needed)
    kept = num_probes - num_probes % batch_size  # the probe without its small last batch
    return f"batch_size={size}" + (f", or a probe of {kept} samples" if batch_size >= needed else "")


def check_batches(owner: str, alterations: Mapping[str, Alteration], num_probes: int | None, batch_size: int) -> None:
    """Refuse an alteration that needs more probes in a batch than some batch of the probe holds.

    Probes are scored in blocks of ``batch_size`` consecutive probes (under DDP too: the blocks are
    dealt to processes whole), so the batches are ``batch_size`` probes and a last one of
    ``num_probes % batch_size``.
    """
    if num_probes is None:
        return
    smallest = min(batch_size, num_probes) if num_probes % batch_size == 0 else num_probes % batch_size
    for name, alteration in alterations.items():
        needed = alteration.min_probes_per_batch
        if smallest >= needed:
            continue
        first = num_probes - smallest
        if num_probes < needed:
            batches = f"a probe of {num_probes} sample{'s' if num_probes > 1 else ''} is one batch of {num_probes}"
        elif batch_size < needed:
            batches = f"batches of batch_size={batch_size} hold {batch_size} probe{'s' if batch_size > 1 else ''} each"
        else:
            alone = f"probe {first}" if smallest == 1 else f"probes {first}-{num_probes - 1}"
            batches = (
                f"{num_probes} probes in batches of batch_size={batch_size} leave {alone} in a batch of {smallest}"
            )
        why = (
            " (its default contrastive loss pushes each probe away from the clean representations of the others in"
            " its batch: a probe alone gets a zero gradient and is not moved, and would read as a collapse)"
            if isinstance(alteration, PGD)
            else ""
        )
        loss = ", or PGD(loss=...) with a loss of one probe" if isinstance(alteration, PGD) else ""
        raise ValueError(
            f"{owner}: alterations[{name!r}] = {alteration!r} needs at least {needed} probes in every batch{why}, but"
            f" {batches}. Use {_batch_fix(num_probes, batch_size, needed)}{loss}."
        )
