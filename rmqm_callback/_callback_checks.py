"""Checks of RMQMCallback's configuration: its alterations, and the monitors that read its keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy, SingleDeviceStrategy, Strategy

from rmqm_callback.alterations import Alteration, GaussianNoise
from rmqm_callback.keys import LOGGED_QUANTITIES, REFERENCE_QUANTITIES
from rmqm_callback.scoring import check_alteration

#: Every key of :meth:`RMQM.compute` (NaN-filled when the model gave non-finite representations).
RESULT_KEYS = (*LOGGED_QUANTITIES, *REFERENCE_QUANTITIES, "num_probes", "D_RC_left_out", "P_RC_left_out")


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


def check_strategy(strategy: Strategy) -> None:
    """Accept single-device and DDP-like strategies, where each process may run its own forward passes.

    Processes score different numbers of probe blocks; under sharded strategies (FSDP, DeepSpeed)
    every forward pass is collective, so that would hang.
    """
    if isinstance(strategy, (SingleDeviceStrategy, DDPStrategy)) and not isinstance(strategy, DeepSpeedStrategy):
        return
    raise ValueError(
        f"RMQMCallback supports single-device and DDP strategies, got {type(strategy).__name__}: under sharded"
        " strategies (FSDP, DeepSpeed) every forward pass is collective, and processes score different numbers"
        " of probe blocks."
    )


def check_distinct_keys(callbacks: list[Callback], this: Callback, keys: set[str]) -> None:
    """Fail when another RMQMCallback logs under one of ``keys`` (``{prefix}/{name}``): Lightning would merge them."""
    for other in callbacks:
        shared = keys & getattr(other, "key_prefixes", set()) if other is not this else set()
        if shared:
            raise ValueError(
                f"Two RMQMCallbacks log under {sorted(shared)[0]!r}: Lightning would keep one value for both."
                " Give them different `prefix=` values, or name their alterations with a dict"
                " (alterations={'noise_small': ..., 'noise_large': ...})."
            )


def check_monitors(
    callbacks: list[Callback], every_n_epochs: int, prefix: str, check_val_every_n_epoch: int | None, validates: bool
) -> None:
    """Fail early where a monitoring callback would look for our key on an epoch we skip.

    Validation every ``k * every_n_epochs`` epochs only happens on epochs we evaluate, so monitors
    that check at validation always find the key.
    """
    if every_n_epochs == 1:
        return
    aligned = validates and isinstance(check_val_every_n_epoch, int) and check_val_every_n_epoch % every_n_epochs == 0
    for other in callbacks:
        monitor = getattr(other, "monitor", None)
        if not isinstance(monitor, str) or not monitor.startswith(f"{prefix}/"):
            continue
        # EarlyStopping checks every validation: it fails on a missing key, or with strict=False
        # re-reads the last value and counts the skipped epochs against its patience
        if isinstance(other, EarlyStopping):
            if aligned and other._check_on_train_epoch_end is not True:
                continue
            hint = ""
        elif isinstance(other, ModelCheckpoint) and other._every_n_epochs % every_n_epochs:
            if aligned and other._save_on_train_epoch_end is not True:
                continue
            hint = f", or ModelCheckpoint(every_n_epochs={every_n_epochs})"
        else:
            continue
        raise ValueError(
            f"RMQMCallback(every_n_epochs={every_n_epochs}) logs {monitor!r} only every {every_n_epochs} epochs,"
            f" but {type(other).__name__} checks it at every validation. Use"
            f" Trainer(check_val_every_n_epoch={every_n_epochs}), which validates only on those epochs{hint}."
        )
