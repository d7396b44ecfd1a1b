"""Standalone DDP fit with an ``RMQMCallback``, run by ``tests/test_callback_ddp.py`` in a subprocess.

Usage::

    python tests/ddp_fit_script.py OUT_DIR CASE [DEVICES [NAMESPACE]]

``CASE`` is ``odd`` (an explicit tensor probe of 37 inputs), ``one`` (a tensor probe of 1 input)
or ``int`` (``probe=20``: the first 20 validation samples). ``DEVICES`` defaults to 2,
``NAMESPACE`` to ``pytorch_lightning`` (or ``lightning.pytorch``: that package's Trainer and module).

Lightning's subprocess launcher re-runs this very command line for rank 1 (with ``LOCAL_RANK``
set), so the script must do the same on every rank. After the fit, every rank writes
``metrics_rank{r}.json`` (the ``rmqm/*`` entries of ``trainer.callback_metrics`` as floats, with
their dtypes) and ``model_rank{r}.pt`` (the final ``state_dict``), then all ranks meet at a
barrier so that rank 0, the process the test waits for, exits only once every rank has written.

The model, data, probes and alterations are built by the functions below, which the test imports
to compute the single-process reference with ``rmqm_callback.score``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import PGD, GaussianNoise, RMQMCallback

#: probes per block (``batch_size`` of the callback and of ``score``)
BATCH_SIZE = 8
#: the int probe: the first ``INT_PROBE`` validation samples
INT_PROBE = 20
#: tensor probe sizes per case: 37 = 5 blocks of 8 (3 on rank 0, 2 on rank 1, the last one short)
TENSOR_PROBES = {"odd": 37, "one": 1}
CASES = ("odd", "one", "int")
#: A case that must fail on every rank: ``probe=20`` from validation data whose items are dicts,
#: which only rank 0 reads (the others must not wait for its probe forever).
FAILING_CASE = "dict-val"
#: A case that only rank 1 refuses: its forward passes outside training are slow, past the guest pass's limit.
SLOW_RANK_CASE = "slow-rank-1"
#: ``guest_pass_limit_s`` of that case, and the seconds each of rank 1's forward passes outside training sleeps.
SLOW_RANK_LIMIT_S, SLOW_RANK_SLEEP_S = 1.5, 0.3
MAX_EPOCHS = 2
FEATURES = 16
CLASSES = 4


def lone_probe_loss(output: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A PGD loss of each probe alone (the default contrastive loss needs 2 probes per batch)."""
    return output.square().sum()


def alterations(case: str = "odd") -> list:
    """The alterations the callback evaluates (logged as ``noise`` and ``pgd``).

    The one-probe case gives PGD a loss of one probe: the default loss refuses a batch of one.
    """
    return [GaussianNoise(levels=8), PGD(levels=4, loss=lone_probe_loss if case == "one" else None)]


def make_data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` inputs ``(count, 1, 4, 4)`` in ``[0, 1]`` and labels from a fixed linear rule."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(count, 1, 4, 4, generator=generator)
    weights = torch.randn(FEATURES, CLASSES, generator=torch.Generator().manual_seed(1234))
    labels = (inputs.flatten(1) @ weights).argmax(dim=1)
    return inputs, labels


def train_data() -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(64, seed=1)


def val_data() -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(48, seed=2)


def tensor_probe(count: int) -> torch.Tensor:
    """An explicit probe of ``count`` inputs, distinct from the training and validation data."""
    return make_data(count, seed=3)[0]


class DictItems(torch.utils.data.Dataset):
    """Validation items as dicts, which an int probe cannot take."""

    def __len__(self) -> int:
        return 48

    def __getitem__(self, index: int) -> dict:
        inputs, labels = val_data()
        return {"image": inputs[index], "label": labels[index]}


def probe_for(case: str) -> int | torch.Tensor:
    """The ``probe`` argument given to the callback in ``case``."""
    if case in ("int", FAILING_CASE):
        return INT_PROBE
    return tensor_probe(TENSOR_PROBES[case])


def reference_probe(case: str) -> torch.Tensor:
    """The probe inputs the callback evaluates in ``case``, in probe order."""
    if case == "int":
        return val_data()[0][:INT_PROBE]
    return tensor_probe(TENSOR_PROBES[case])


class TinyClassifierSteps:
    """A small MLP classifier; RMQM measures its output (the logits). Mixed into either namespace's module."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(FEATURES, 12), nn.Tanh(), nn.Linear(12, CLASSES))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        return F.cross_entropy(self(inputs), labels)

    def validation_step(self, batch, batch_idx):
        inputs, labels = batch
        return F.cross_entropy(self(inputs), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class SlowOnRankOne(TinyClassifierSteps):
    """The classifier, with forward passes outside training that take ``SLOW_RANK_SLEEP_S`` longer on rank 1."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training and os.environ.get("LOCAL_RANK") == "1":
            time.sleep(SLOW_RANK_SLEEP_S)
        return super().forward(inputs)


class SlowTinyClassifier(SlowOnRankOne, pl.LightningModule):
    """The slow-on-rank-1 classifier as a ``pytorch_lightning.LightningModule``."""


class TinyClassifier(TinyClassifierSteps, pl.LightningModule):
    """The classifier as a ``pytorch_lightning.LightningModule``."""


class UnifiedTinyClassifier(TinyClassifierSteps, L.LightningModule):
    """The classifier as a ``lightning.pytorch.LightningModule``."""


NAMESPACES = {"pytorch_lightning": (pl, TinyClassifier), "lightning.pytorch": (L, UnifiedTinyClassifier)}


def main(out_dir: str, case: str, devices: int = 2, namespace: str = "pytorch_lightning") -> None:
    if case not in (*CASES, FAILING_CASE, SLOW_RANK_CASE):
        raise SystemExit(f"unknown case {case!r}; expected one of {CASES}, {FAILING_CASE!r} or {SLOW_RANK_CASE!r}")
    lightning, module_class = NAMESPACES[namespace]
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    if case == SLOW_RANK_CASE:
        model = SlowTinyClassifier()
        callback = RMQMCallback(probe_for("odd"), alterations("odd"), batch_size=BATCH_SIZE)
        callback.guest_pass_limit_s = SLOW_RANK_LIMIT_S
    else:
        model = module_class()
        callback = RMQMCallback(probe_for(case), alterations(case), batch_size=BATCH_SIZE)
    trainer = lightning.Trainer(
        strategy="ddp" if devices > 1 else "auto",
        accelerator="cpu",
        devices=devices,
        max_epochs=MAX_EPOCHS,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    train, val = TensorDataset(*train_data()), TensorDataset(*val_data())
    if case == FAILING_CASE:
        val = DictItems()
    trainer.fit(
        model,
        train_dataloaders=DataLoader(train, batch_size=8, shuffle=True),
        val_dataloaders=DataLoader(val, batch_size=8),
    )

    rank = trainer.global_rank
    out = Path(out_dir)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("rmqm/")}
    dtypes = {key: str(value.dtype) for key, value in trainer.callback_metrics.items() if key.startswith("rmqm/")}
    record = {
        "rank": rank,
        "world_size": trainer.world_size,
        "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
        "pid": os.getpid(),
        "trainer": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
        "metrics": metrics,
        "dtypes": dtypes,
        "last_results": callback.last_results,
    }
    torch.save(model.state_dict(), out / f"model_rank{rank}.pt")
    (out / f"metrics_rank{rank}.json").write_text(json.dumps(record, indent=1))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # rank 0 leaves only after every rank has written its files


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]) if len(sys.argv) > 3 else 2,
        sys.argv[4] if len(sys.argv) > 4 else "pytorch_lightning",
    )
