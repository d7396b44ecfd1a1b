"""What an ``RMQMCallback`` saves in a checkpoint and restores from one: its probe, settings and last results.

The settings are compared on resume (a warning when the logged values would not be comparable), and
``recorded`` holds what ``rmqm score`` needs to evaluate a checkpoint as the callback did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from rmqm_callback.alterations import Alteration, InputAlteration
from rmqm_callback.alterations._recorded import alteration_spec, callable_spec
from rmqm_callback.evaluation.encoder import EmbedRule
from rmqm_callback.functional.knn import knn_k
from rmqm_callback.lightning._held_probe import HeldProbe
from rmqm_callback.lightning._namespaces import LightningCallback


class CallbackState(LightningCallback):
    """The checkpointed state of a callback; its ``state_key`` holds the alterations and ``prefix``."""

    alterations: dict[str, Alteration]
    every_n_epochs: int
    batch_size: int
    convention: str
    normalize: bool
    prefix: str
    embed: EmbedRule
    preprocess: Callable[[Tensor], Any] | None
    spectral: bool
    knn: bool | int
    last_results: dict[str, dict[str, float]]
    _held: HeldProbe
    _precision: str | None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(prefix=self.prefix, alterations=self._settings()["alterations"])

    def _settings(self) -> dict[str, Any]:
        """The configuration saved in checkpoints (and compared on resume, see :meth:`_comparable`)."""
        return {
            "alterations": {name: repr(alt) for name, alt in self.alterations.items()},
            "every_n_epochs": self.every_n_epochs,
            "batch_size": self.batch_size,
            "convention": self.convention,
            "normalize": self.normalize,
            "prefix": self.prefix,
        }

    def _recorded(self) -> dict[str, Any]:
        """What ``rmqm score`` needs to evaluate as this callback did (:mod:`rmqm_callback.alterations._recorded`)."""
        return {
            "alterations": {name: alteration_spec(alteration) for name, alteration in self.alterations.items()},
            "embed": callable_spec(self.embed),
            "preprocess": callable_spec(self.preprocess),
            "batch_size": self.batch_size,
            "convention": self.convention,
            "normalize": self.normalize,
            "prefix": self.prefix,
            "precision": self._precision,
            "knn": knn_k(self.knn),
            "spectral": self.spectral,
        }

    def _comparable(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings that change the logged values: not ``every_n_epochs``; ``batch_size`` only for PGD."""
        batch_matters = not all(isinstance(alteration, InputAlteration) for alteration in self.alterations.values())
        ignored = {"every_n_epochs"} | (set() if batch_matters else {"batch_size"})
        return {key: value for key, value in settings.items() if key not in ignored}

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "probe": self._held.state(),
            "settings": self._settings(),
            "recorded": self._recorded(),
            "last_results": dict(self.last_results),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._held.restore(state_dict)
        self.last_results = dict(state_dict.get("last_results", {}))
        saved = state_dict.get("settings")
        if saved is not None and self._comparable(saved) != self._comparable(self._settings()):
            rank_zero_warn(
                f"RMQMCallback: the checkpoint was saved with settings {saved}, this callback has"
                f" {self._settings()}; the values logged after resuming are not comparable with the earlier ones."
            )
