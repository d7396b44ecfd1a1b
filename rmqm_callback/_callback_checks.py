"""Checks of RMQMCallback's configuration: its alterations, and the monitors that read its keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

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


def check_monitors(callbacks: list[Callback], every_n_epochs: int, prefix: str) -> None:
    """Fail early where a monitoring callback would look for our key on an epoch we skip."""
    if every_n_epochs == 1:
        return
    for other in callbacks:
        monitor = getattr(other, "monitor", None)
        if not isinstance(monitor, str) or not monitor.startswith(f"{prefix}/"):
            continue
        # EarlyStopping checks every validation: it fails on a missing key, or with strict=False
        # re-reads the last value and counts the skipped epochs against its patience
        if isinstance(other, EarlyStopping):
            hint = ""
        elif isinstance(other, ModelCheckpoint) and other._every_n_epochs % every_n_epochs:
            hint = f", or ModelCheckpoint(every_n_epochs={every_n_epochs})"
        else:
            continue
        raise ValueError(
            f"RMQMCallback(every_n_epochs={every_n_epochs}) logs {monitor!r} only every {every_n_epochs} epochs,"
            f" but {type(other).__name__} checks it at every validation. Use"
            f" Trainer(check_val_every_n_epoch={every_n_epochs}) with every_n_epochs=1{hint}."
        )
