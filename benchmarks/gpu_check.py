"""The CUDA paths end to end, in one short run: what to execute first when a GPU is lent.

Steps, each printed with its result (the script exits 1 if any check fails):

1. noise and PGD ``score()`` of the LeNet-5-like model on ``--device``, with their wall time and the
   probe throughput (altered inputs embedded per second) against the model's own inference
   throughput on the same batch size (goal: at least 90% for noise);
2. a short ``Trainer`` fit with ``RMQMCallback`` (``bf16-mixed`` on CUDA, ``32-true`` on the CPU),
   and the same fit without the callback: the trained weights must be bit-identical (the guest rule);
3. the peak memory: CUDA's ``max_memory_allocated``, or the process's peak RSS on the CPU.

It takes well under 5 minutes on one GPU, and runs on the CPU (``--device cpu``; ``--quick`` makes it
small) in the tests, so it cannot rot::

    python benchmarks/gpu_check.py                        # on a machine with a GPU
    python benchmarks/gpu_check.py --device cpu --quick   # the test's run
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, _models

import pytorch_lightning as pl
import torch
from _harness import parser, setup, synchronize, table, timed_once
from _models import make_model, make_probe
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import PGD, GaussianNoise, RMQMCallback, score


class TinyEncoder(pl.LightningModule):
    """A LeNet-like encoder trained with cross-entropy on random 1x28x28 inputs (BatchNorm included)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(864, 32)
        )
        self.head = nn.Linear(32, 10)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(self.head(self(inputs)), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _throughputs(device: torch.device, probes: int, levels: int, batch_size: int) -> list[list[object]]:
    model = make_model("lenet", device)
    probe = make_probe("lenet", probes)
    batch = probe[:batch_size].to(device)
    passes = max(4, probes * levels // batch_size)
    with torch.inference_mode():
        model(batch)  # warm-up
        inference, _ = timed_once(lambda: [model(batch) for _ in range(passes)], device)
    model_rate = passes * batch.shape[0] / inference
    rows = []
    for name, alteration in (("noise", GaussianNoise(levels=levels)), ("pgd", PGD(levels=max(3, levels // 3)))):
        inputs = probes * alteration.levels
        score(model, probe[:batch_size], alteration, device=device, batch_size=batch_size)  # warm-up
        seconds, result = timed_once(
            lambda alteration=alteration: score(model, probe, alteration, device=device, batch_size=batch_size), device
        )
        rate = inputs / seconds
        finite = bool(torch.isfinite(result["RMQM"]))
        rows.append([name, inputs, seconds, rate, model_rate, rate / model_rate, "ok" if finite else "FAILED: NaN"])
    return rows


def _fit(device: torch.device, precision: str, with_callback: bool, epochs: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.rand(256, 1, 28, 28, generator=generator), torch.randint(0, 10, (256,), generator=generator)
    train = DataLoader(TensorDataset(inputs[:192], labels[:192]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(inputs[192:], labels[192:]), batch_size=32)
    callbacks = [RMQMCallback(probe=32, alterations=GaussianNoise(levels=6))] if with_callback else []
    pl.seed_everything(0, verbose=False)
    model = TinyEncoder()
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision, max_epochs=epochs,
        callbacks=callbacks, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, deterministic=device.type != "cuda",
    )  # fmt: skip
    trainer.fit(model, train, val)
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def _peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated on the GPU at most"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB peak RSS of this process"


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    device = setup(args)
    probes, levels = (64, 10) if args.quick else (2048, 100)
    batch_size = min(args.batch_size, probes)
    failures = 0
    start = time.perf_counter()
    print("\n## score() on", device, f"({probes} probes)\n")
    rows = _throughputs(device, probes, levels, batch_size)
    headers = ["alteration", "altered inputs", "seconds", "inputs/s", "model inputs/s", "share", "check"]
    print(table(headers, rows))
    failures += sum(row[-1] != "ok" for row in rows)
    noise_share = float(rows[0][5])  # type: ignore[arg-type]
    print(f"\nnoise probe throughput is {noise_share:.0%} of the model's own (goal >= 90%)")
    precision = "bf16-mixed" if device.type == "cuda" else "32-true"
    print(f"\n## a fit with and without RMQMCallback, precision {precision}\n")
    epochs = 2
    with_callback = _fit(device, precision, True, epochs)
    without = _fit(device, precision, False, epochs)
    same = all(torch.equal(with_callback[name], without[name]) for name in without)
    print(f"trained weights (and BatchNorm statistics) bit-identical with and without the callback: {same}")
    failures += not same
    synchronize(device)
    print(f"\npeak memory: {_peak_memory(device)}")
    verdict = "all checks passed" if not failures else f"{failures} FAILED"
    print(f"total: {time.perf_counter() - start:.1f} s, {verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
