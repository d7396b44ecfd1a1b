"""The probe in a checkpoint: itself when it is small, else what rebuilds and verifies it.

Every checkpoint the callback is in holds a record of its probe. Within the budget
(``RMQMCallback(checkpoint_probe_mib=16)``) the record holds the probe's tensors, as before; over
it, it holds where the probe came from (an int probe: the first ``size`` samples, in dataset
order, of the ``source`` data, that is dataset indices ``0 .. size - 1``) and a fingerprint of its
inputs and labels, so that a resumed run rebuilds the probe from the data and can tell whether
the data are the same.

Examples:
    >>> import torch
    >>> probe = Probe(torch.zeros(4, 3))
    >>> record = probe_record(probe, source="given", requested=None, budget_bytes=0)
    >>> record["inputs"] is None, record["size"], record["fingerprint"] == fingerprint(probe)
    (True, 4, True)

"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from rmqm_callback.evaluation.probe import Probe

MIB = 2**20


def _tensor_bytes(tensor: Tensor | None) -> int:
    return 0 if tensor is None else tensor.numel() * tensor.element_size()


def probe_bytes(probe: Probe) -> int:
    """Bytes the probe's inputs and labels take."""
    return _tensor_bytes(probe.inputs) + _tensor_bytes(probe.labels)


def _digest(hasher: Any, tensor: Tensor | None) -> None:
    if tensor is None:
        hasher.update(b"none")
        return
    hasher.update(f"{tuple(tensor.shape)}|{tensor.dtype}|".encode())
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def fingerprint(probe: Probe) -> str:
    """SHA-256 of the probe's inputs and labels (shapes, dtypes and bytes), computed once per probe.

    A probe's tensors are fixed for the run, so the digest is kept on the probe: a checkpoint saved
    every epoch does not hash hundreds of MiB every epoch.
    """
    cached = getattr(probe, "_fingerprint", None)
    if cached is not None and cached[0] is probe.inputs and cached[1] is probe.labels:
        return cached[2]
    hasher = hashlib.sha256()
    _digest(hasher, probe.inputs)
    _digest(hasher, probe.labels)
    digest = hasher.hexdigest()
    probe._fingerprint = (probe.inputs, probe.labels, digest)
    return digest


def probe_record(probe: Probe, *, source: str, requested: int | None, budget_bytes: int) -> dict[str, Any]:
    """The checkpoint's record of ``probe`` (plain data and CPU tensors).

    Args:
        probe: the in-memory probe.
        source: ``"validation"`` or ``"training"`` for an int probe, ``"given"`` otherwise.
        requested: the ``n`` of an int probe (the data may have had fewer samples), else ``None``.
        budget_bytes: store the tensors when they take at most this many bytes.

    """
    stored = probe_bytes(probe) <= budget_bytes
    return {
        "source": source,
        "requested": requested,
        "size": len(probe),
        "bytes": probe_bytes(probe),
        "fingerprint": fingerprint(probe),
        "inputs": probe.inputs.detach().cpu() if stored else None,
        "labels": None if not stored or probe.labels is None else probe.labels.detach().cpu(),
    }


def record_from_state(state: dict[str, Any]) -> dict[str, Any] | None:
    """The probe record of a callback state, also from checkpoints of version 0.1 (tensors only)."""
    record = state.get("probe")
    if isinstance(record, dict):
        return record
    inputs = state.get("probe_inputs")
    if inputs is None:
        return None
    probe = Probe(inputs, state.get("probe_labels"))
    requested = state.get("probe_size")
    record = probe_record(probe, source="given" if requested is None else "data", requested=requested, budget_bytes=0)
    return {**record, "inputs": inputs, "labels": state.get("probe_labels")}


def stored_probe(record: dict[str, Any]) -> Probe | None:
    """The probe kept in ``record``, or ``None`` when it was over the budget."""
    inputs = record.get("inputs")
    return None if inputs is None else Probe(inputs, record.get("labels"))
