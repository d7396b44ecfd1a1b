"""Checks of RMQMCallback's configuration: its alterations, the strategy, the trainer, and other RMQMCallbacks.

(The monitors that read its keys are checked against the evaluation schedule, in
:mod:`rmqm_callback.lightning._schedule`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rmqm_callback.alterations import Alteration, GaussianNoise
from rmqm_callback.evaluation._stream import check_alteration
from rmqm_callback.keys import KNN_ACCURACY_KEY, SPECTRAL_QUANTITIES
from rmqm_callback.lightning._namespaces import Trainer, is_instance


def named_alterations(alterations: Any) -> dict[str, Alteration]:
    """``{name: alteration}`` from one alteration, a list of them, or a name -> alteration dict."""
    if alterations is None:
        alterations = GaussianNoise()
    if isinstance(alterations, Alteration):
        alterations = [alterations]
    if isinstance(alterations, Mapping):
        named = {name: check_alteration(alteration) for name, alteration in alterations.items()}
    elif isinstance(alterations, (list, tuple)):
        named = {}
        for alteration in alterations:
            name = check_alteration(alteration).name
            if name in named:
                raise ValueError(
                    f"`alterations` has two alterations named {name!r}; pass a dict of distinct names instead,"
                    f" e.g. {{'{name}': ..., '{name}_2': ...}}."
                )
            named[name] = alteration
    else:
        raise TypeError(f"`alterations` must be an Alteration, a list or a dict of them, got {alterations!r}.")
    if not named:
        raise ValueError("`alterations` is empty.")
    for name in named:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"`alterations` names must be non-empty strings without '/', got {name!r}.")
    return named


def check_strategy(strategy: Any) -> None:
    """Accept single-device and DDP-like strategies (either namespace): each process runs its own forward passes.

    Processes score different numbers of probe blocks; under sharded strategies (FSDP, DeepSpeed)
    every forward pass is collective, so that would hang.
    """
    own_forward = is_instance(strategy, "strategies", "SingleDeviceStrategy") or is_instance(
        strategy, "strategies", "DDPStrategy"
    )
    if own_forward and not is_instance(strategy, "strategies", "DeepSpeedStrategy"):
        return
    raise ValueError(
        f"RMQMCallback supports single-device and DDP strategies, got {type(strategy).__name__}: under sharded"
        " strategies (FSDP, DeepSpeed) every forward pass is collective, and processes score different numbers"
        " of probe blocks."
    )


def check_distinct_keys(callbacks: list[Any], this: Any, keys: set[str]) -> None:
    """Fail when another RMQMCallback logs under one of ``keys`` (``{prefix}/{name}``): Lightning would merge them."""
    for other in callbacks:
        shared = keys & getattr(other, "key_prefixes", set()) if other is not this else set()
        if shared:
            flags = {quantity: "spectral" for quantity in SPECTRAL_QUANTITIES} | {KNN_ACCURACY_KEY: "knn"}
            once = {key for key in shared if key.rpartition("/")[2] in flags}  # logged once per callback
            first = min(shared - once) if shared - once else min(shared)  # an alteration's keys first
            flag = flags.get(first.rpartition("/")[2])
            fix = (
                f"or log {first.rpartition('/')[2]} from one of them only ({flag}=False on the others)"
                if first in once
                else "or name their alterations with a dict (alterations={'noise_small': ..., 'noise_large': ...})"
            )
            raise ValueError(
                f"Two RMQMCallbacks log under {first!r}: Lightning would keep one value for both."
                f" Give them different `prefix=` values, {fix}."
            )


def check_trainer(trainer: Trainer) -> None:
    """Refuse a trainer under which the callback cannot log (``barebones=True``)."""
    if getattr(trainer, "barebones", False):
        raise ValueError(
            "RMQMCallback logs through LightningModule.log, which Trainer(barebones=True) turns off: RMQM would be"
            " computed every epoch and logged nowhere. Use Trainer(barebones=False), or score checkpoints with"
            " `rmqm score` / rmqm_callback.score() instead."
        )
