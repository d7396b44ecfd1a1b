"""Callback overhead: share of each epoch spent on RMQM in examples/train_digits.py's default setting.

Runs the same seeded fit twice in one process, with and without ``RMQMCallback`` (noise, the
example's defaults: 256 probes x 100 levels), times every training epoch (training steps,
validation and the callback) with ``time.perf_counter`` (``torch.cuda.synchronize`` on a GPU),
and reads the callback's own ``rmqm/noise/seconds``. Prints per-epoch medians and the ratios.

    python benchmarks/bench_callback.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from _harness import parser, setup
from pytorch_lightning.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _fits import quiet_lightning
from _methods import EncoderModule
from train_digits import make_loaders
from train_digits import parse_args as example_args

from rmqm_callback import GaussianNoise, RMQMCallback

KEY = "rmqm/noise/seconds"


class EpochTimer(Callback):
    """Wall time of every training epoch (its validation and the callbacks' work included)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.epochs: list[float] = []
        self.rmqm: list[float] = []

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = self._now()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(self._now() - self.start)
        if KEY in trainer.callback_metrics:
            self.rmqm.append(float(trainer.callback_metrics[KEY]))


def fit(with_callback: bool, epochs: int, device: torch.device) -> EpochTimer:
    settings = example_args([])
    pl.seed_everything(settings.seed, verbose=False)
    train_loader, val_loader, probe = make_loaders(settings)
    model = EncoderModule(settings.method, settings.embedding_dim, settings.optimizer, lr=settings.lr)
    timer = EpochTimer(device)
    callbacks: list[Callback] = [timer]
    if with_callback:
        callbacks.insert(0, RMQMCallback(probe, GaussianNoise(levels=settings.levels), progress=False))
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator=device.type,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        trainer.callbacks.extend(callbacks)
        trainer.fit(model, train_loader, val_loader)
    return timer


def main() -> None:
    arguments = parser(__doc__.splitlines()[0]).parse_args()
    device = setup(arguments)
    quiet_lightning()
    epochs = 3 if arguments.quick else example_args([]).epochs
    plain = fit(False, epochs, device)
    guest = fit(True, epochs, device)
    # the first epoch pays one-off costs (data loader start-up, allocations): leave it out
    plain_epoch = statistics.median(plain.epochs[1:])
    guest_epoch = statistics.median(guest.epochs[1:])
    rmqm = statistics.median(guest.rmqm[1:])
    print(f"\n{epochs} epochs of examples/train_digits.py defaults (first epoch left out of the medians)\n")
    print("| epoch without callback (s) | epoch with callback (s) | RMQM per epoch (s) | RMQM share of epoch |"
          " epoch slow-down |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {plain_epoch:.3f} | {guest_epoch:.3f} | {rmqm:.3f} | {rmqm / guest_epoch:.0%} |"
          f" {guest_epoch / plain_epoch:.2f}x |")


if __name__ == "__main__":
    main()
