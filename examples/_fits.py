"""Quiet Lightning for the studies' many small CPU fits: a bare ``Trainer``, silenced warnings, worker set-up."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytorch_lightning as pl
import torch


def quiet_trainer(max_epochs: int, loader: Any, **settings: Any) -> pl.Trainer:
    """A CPU ``Trainer`` for the studies' many small fits: no logger, checkpoints, progress bar or summary.

    ``settings`` add to or override these (``callbacks=...``, ``num_sanity_val_steps=0``...).
    """
    defaults = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": len(loader),
    }
    return pl.Trainer(**{**defaults, **settings})


def quiet_lightning() -> None:
    """Silence Lightning's start-up banner and the warnings that tiny CPU runs on in-memory data always raise."""
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        ".*does not have many workers.*",
        ".*is smaller than the logging interval.*",
        ".*GPU available but not used.*",
        ".*LeafSpec.*is deprecated.*",
        ".*defined a `validation_step` but have no `val_dataloader`.*",  # pytorch_lightning's _pytree on recent torch
    ):
        warnings.filterwarnings("ignore", message=message)


def init_worker() -> None:
    """A study's worker process: one torch thread (fastest for these tiny models) and a quiet Lightning."""
    torch.set_num_threads(1)
    quiet_lightning()
