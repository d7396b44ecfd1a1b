"""The callback's probe over a run: taken or read once, kept fixed, recorded in checkpoints, restored on resume.

A probe is given (a tensor, a pair, a Dataset, a DataLoader) or asked for by size (an int: the
first ``n`` samples of the data the evaluations follow, taken at the start of every ``fit``). In a
checkpoint it is its record (:mod:`rmqm_callback.lightning._probe_state`): the tensors within the budget,
else its source and fingerprint, so that resuming rebuilds it from the data and checks it.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from rmqm_callback.evaluation.probe import Probe, as_probe, materialize
from rmqm_callback.functional._checks import check_int, check_number
from rmqm_callback.lightning._namespaces import Trainer
from rmqm_callback.lightning._probe_state import MIB, fingerprint, probe_record, record_from_state, stored_probe
from rmqm_callback.lightning._trainer_probe import probe_from_trainer


class HeldProbe:
    """The probe of one ``RMQMCallback``.

    Args:
        probe: what the callback was given (an int ``n``: the first ``n`` samples of the data).
        checkpoint_probe_mib: the most MiB of probe a checkpoint stores.

    Examples:
        >>> import torch
        >>> held = HeldProbe(torch.zeros(4, 3), checkpoint_probe_mib=16)
        >>> held.state()["size"], held.state()["inputs"].shape
        (4, torch.Size([4, 3]))

    """

    def __init__(self, probe: Any, checkpoint_probe_mib: float) -> None:
        self.budget_mib = check_number("checkpoint_probe_mib", checkpoint_probe_mib)
        if isinstance(probe, int) and not isinstance(probe, bool):
            self.size: int | None = check_int("probe", probe, minimum=1)
            self.probe: Probe | None = None
            self.source = "data"
        else:
            self.size = None
            self.probe = as_probe(probe)
            self.source = "given"
        self._resumed: dict[str, Any] | None = None  # a checkpoint's record of a probe it did not store
        self._said_one = False

    def start_fit(self) -> None:
        """A new ``fit``: an int probe is taken afresh (a checkpoint being resumed brings its own)."""
        self._resumed = None
        if self.size is not None:
            self.probe = None

    def take(self, trainer: Trainer, source: str) -> Probe:
        """The probe, taken from the ``source`` data or read (once), and checked against a checkpoint's record."""
        if self.probe is None:
            count, resumed = self.size, self._resumed
            if resumed is not None and resumed.get("source") in ("validation", "training"):
                # rebuild what the checkpoint's probe was: the same samples of the same data
                source, count = resumed["source"], resumed.get("requested") or resumed["size"]
            self.probe = probe_from_trainer(trainer, count, source)  # type: ignore[arg-type]
            self.source = source
        else:
            self.probe = materialize(self.probe)  # a Dataset or DataLoader is read once, here
        if self._resumed is not None:
            self._verify(self.probe, self._resumed)
            self._resumed = None
        if len(self.probe) == 1 and not self._said_one:
            self._said_one = True
            rank_zero_warn(
                "RMQMCallback: the probe has a single sample, so the standard errors over probes (se/...) are NaN:"
                " they need at least 2 probes. Pass a larger probe for error bars."
            )
        return self.probe

    def _verify(self, probe: Probe, record: dict[str, Any]) -> None:
        if fingerprint(probe) != record["fingerprint"]:
            origin = (
                f"the first {record['size']} samples of the {record['source']} data"
                if record["source"] in ("validation", "training")
                else "the probe passed to this callback"
            )
            rank_zero_warn(
                f"RMQMCallback: the checkpoint did not store its probe ({record['bytes'] / MIB:.1f} MiB, over"
                f" checkpoint_probe_mib={self.budget_mib:g}), and the probe rebuilt now from {origin}"
                f" ({len(probe)} samples) differs from it (fingerprints {fingerprint(probe)[:12]} and"
                f" {record['fingerprint'][:12]}): the data changed, so the values logged after resuming are not"
                " comparable with the earlier ones."
            )

    def state(self) -> dict[str, Any] | None:
        """The checkpoint's record of the probe (``None`` before an int probe was taken)."""
        if type(self.probe) is not Probe:
            return None
        budget = int(self.budget_mib * MIB)
        return probe_record(self.probe, source=self.source, requested=self.size, budget_bytes=budget)

    def restore(self, callback_state: dict[str, Any]) -> None:
        """Use the checkpoint's probe (say so if it is not the one given); over the budget, rebuild it at the start."""
        record = record_from_state(callback_state)
        if record is None:
            return
        saved = stored_probe(record)
        if saved is None:  # over the budget: rebuilt from the data at train start, and verified
            self._resumed = record
            if self.size is not None:
                self.probe = None
            return
        if not self._is(saved, record.get("requested")):
            rank_zero_warn(
                f"RMQMCallback: resuming with the checkpoint's probe ({len(saved)} samples), not the"
                f" probe passed to this callback, so that the values stay comparable across the run."
            )
        self.probe = saved
        self.source = record.get("source", "given")

    def _is(self, saved: Probe, saved_size: int | None) -> bool:
        """Whether ``saved`` is the probe this callback was given (an int probe: asked for the same size)."""
        if self.probe is None:
            return self.size is None or self.size == (len(saved) if saved_size is None else saved_size)
        given = self.probe = materialize(self.probe)  # a Dataset or DataLoader is read now, not at train start
        return fingerprint(given) == fingerprint(saved)
