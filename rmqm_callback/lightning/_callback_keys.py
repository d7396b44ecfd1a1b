"""The keys an ``RMQMCallback`` logs, and those it knows it will not log (with why), for the monitors' checks."""

from __future__ import annotations

from rmqm_callback.alterations import Alteration
from rmqm_callback.keys import (
    KNN_ACCURACY_KEY,
    LOGGED_QUANTITIES,
    REFERENCE_QUANTITIES,
    SECONDS_KEY,
    SPECTRAL_QUANTITIES,
    callback_key,
    metric_key,
)
from rmqm_callback.lightning._held_probe import HeldProbe
from rmqm_callback.lightning._knn import knn_unlogged
from rmqm_callback.lightning._namespaces import LightningCallback


class CallbackKeys(LightningCallback):
    """The logged keys of a callback with ``alterations``, ``prefix``, ``convention``, ``spectral`` and ``knn``."""

    alterations: dict[str, Alteration]
    prefix: str
    convention: str
    spectral: bool
    knn: bool | int
    _held: HeldProbe

    @property
    def logged_keys(self) -> set[str]:
        """Every scalar key this callback logs (the monitors' keys are checked against them)."""
        quantities = LOGGED_QUANTITIES + (REFERENCE_QUANTITIES if self.convention == "reference" else ())
        keys = {metric_key(self.prefix, name, q) for name in self.alterations for q in (*quantities, SECONDS_KEY)}
        return keys | self._once_per_callback_keys()

    @property
    def key_prefixes(self) -> set[str]:
        """The start of every key this callback logs: ``{prefix}/{name}`` per alteration, and the keys logged once."""
        return {f"{self.prefix}/{name}" for name in self.alterations} | self._once_per_callback_keys()

    def _once_per_callback_keys(self) -> set[str]:
        """The spectral scores (``spectral=True``) and the k-NN accuracy (unless it is known not to be logged)."""
        keys = {callback_key(self.prefix, quantity) for quantity in SPECTRAL_QUANTITIES} if self.spectral else set()
        knn = callback_key(self.prefix, KNN_ACCURACY_KEY)
        return keys if knn in self.unlogged_keys else keys | {knn}

    @property
    def unlogged_keys(self) -> dict[str, str]:
        """Keys this callback does not log, with why: a monitor of one is refused with that message (see ``knn``)."""
        return knn_unlogged(self.prefix, self.knn, self._held.probe)
