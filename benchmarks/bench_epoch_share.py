"""The share of a training epoch that one evaluation of the callback adds, from measured per-sample costs.

Two per-sample costs are measured on this machine, in interleaved rounds (median of ``--repeats``,
wall and process CPU time, see README.md):

- **training**: one step = forward, cross-entropy backward and an SGD (momentum) step on a batch of
  ``--train-batch-size`` (128) in-memory random inputs, divided by the batch size;
- **evaluation**: ``rmqm_callback.score(model, probe, GaussianNoise(levels=L))`` as a user gets it,
  with one ``GaussianNoise`` instance kept across calls (as the callback keeps its alterations
  across epochs, so its cache of altered inputs is warm: these are evaluations after the first),
  divided by the inputs it sent through the model (counted by a forward hook: the N x L altered
  inputs plus ``score()``'s set-up check of the first two probes through every level).

The epoch is estimated as training samples x training cost per sample (compute only: no data
loading, no validation loop, so real epochs are longer and the shares here are upper estimates);
one evaluation of the callback as probes x levels x evaluation cost per input. Models: a
LeNet-5-like net on 1x28x28 (60,000 samples, MNIST-sized), a CIFAR-style ResNet-18 on 3x32x32
(50,000, CIFAR-10-sized), and that ResNet-18 at 3x224x224 with 1,281,167 samples (ImageNet-sized),
**scaled, not measured**: both per-sample costs x (224/32)^2 = 49, so its ratio of evaluation to
training per sample is the 32x32 one. The ResNet-18 is timed on a few batches only (it is slow on
one CPU thread), with its evaluation cost per input taken from one ``score()`` of 256 probes x 3
levels (passes of 256 inputs, as every setting below makes) for every setting; LeNet's is timed
at each setting itself.

python benchmarks/bench_epoch_share.py [--quick] [--device cuda] [--threads 1] [--repeats 3]
    [--batch-size 256] [--train-batch-size 128]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _harness import interleaved, load_average, parser, setup, table
from _models import LeNet5, ResNet18
from torch import Tensor, nn

from rmqm_callback import GaussianNoise, score

#: (224 / 32) ** 2: the CIFAR-style ResNet-18 keeps full resolution in its stem, so its cost grows with the pixels.
IMAGENET_SCALE = (224 / 32) ** 2


@dataclass(frozen=True)
class Setting:
    """One way to run the callback: probes x noise levels, every ``every_n_epochs`` epochs."""

    name: str
    probes: int
    levels: int
    every_n_epochs: int = 1

    @property
    def forward_inputs(self) -> int:
        """Altered inputs one evaluation sends through the model (level 0, the clean probe, included)."""
        return self.probes * self.levels


SETTINGS = [
    Setting("default: GaussianNoise() (100 levels), 512 probes, every epoch", 512, 100),
    Setting("GaussianNoise(levels=10), 64 probes", 64, 10),
    Setting("GaussianNoise(levels=10), 256 probes", 256, 10),
    Setting("every_n_epochs=5 (the default, amortised over 5 epochs)", 512, 100, every_n_epochs=5),
]


@dataclass(frozen=True)
class Workload:
    """A model and the training set whose epoch the evaluation is compared with."""

    name: str
    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    data: str
    training_samples: int
    train_steps: int  # training steps timed per round
    train_batch: int | None  # None: --train-batch-size
    measured_at: dict[str, tuple[int, int]]  # setting name -> (probes, levels) score() is timed at


def workloads(quick: bool) -> list[Workload]:
    """LeNet-5 timed at every setting; the ResNet-18 at one small ``score()`` (a few batches: it is slow on a CPU)."""
    if quick:
        lenet_at = {s.name: (32, 10) for s in SETTINGS}
        resnet_at = {s.name: (4, 3) for s in SETTINGS}
        lenet_steps, resnet_steps, resnet_batch = 3, 1, 8
    else:
        lenet_at = {s.name: (s.probes, s.levels) for s in SETTINGS}
        resnet_at = {s.name: (256, 3) for s in SETTINGS}
        lenet_steps, resnet_steps, resnet_batch = 40, 2, None
    return [
        Workload("LeNet-5", lambda: LeNet5(dim=10), (1, 28, 28), "1x28x28 (MNIST-sized)", 60_000, lenet_steps, None,
                 lenet_at),
        Workload("ResNet-18", lambda: ResNet18(dim=10), (3, 32, 32), "3x32x32 (CIFAR-10-sized)", 50_000,
                 resnet_steps, resnet_batch, resnet_at),
    ]  # fmt: skip


class TrainSteps:
    """``steps`` supervised training steps (forward, cross-entropy, backward, SGD momentum step) on fixed batches."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...], batch: int, steps: int, device: torch.device) -> None:
        generator = torch.Generator().manual_seed(3)
        self.model, self.steps, self.batch = model, steps, batch
        self.batches = [
            (torch.rand(batch, *shape, generator=generator).to(device),
             torch.randint(0, 10, (batch,), generator=generator).to(device))
            for _ in range(min(steps, 4))
        ]  # fmt: skip
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    @property
    def samples(self) -> int:
        return self.steps * self.batch

    def __call__(self) -> None:
        self.model.train()
        for step in range(self.steps):
            inputs, labels = self.batches[step % len(self.batches)]
            loss = F.cross_entropy(self.model(inputs), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


class Evaluation:
    """``score()`` of ``probes`` x ``levels``, one ``GaussianNoise`` kept across calls (as the callback keeps it)."""

    def __init__(self, model: nn.Module, probe: Tensor, levels: int, batch_size: int) -> None:
        self.model, self.probe, self.batch_size = model, probe, batch_size
        self.noise = GaussianNoise(levels=levels)
        self.result: dict[str, Tensor] = {}

    def __call__(self) -> None:
        self.result = score(self.model, self.probe, self.noise, batch_size=self.batch_size)

    def count_forward_inputs(self) -> int:
        """Run once (the warm-up, which also fills the noise cache) counting the inputs the model sees."""
        seen = [0]

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: object) -> None:
            seen[0] += inputs[0].shape[0]

        handle = self.model.register_forward_hook(hook)
        try:
            self()
        finally:
            handle.remove()
        return seen[0]


@dataclass
class PerSample:
    """Measured per-sample costs of one model (seconds, median wall and CPU)."""

    train_wall: float
    train_cpu: float
    eval_wall: dict[str, float]  # setting name -> per altered input
    eval_cpu: dict[str, float]


def measure(workload: Workload, args, device: torch.device) -> tuple[PerSample, list[list[object]]]:
    """Interleaved rounds of training steps and every distinct ``score()`` size; per-sample medians."""
    torch.manual_seed(0)
    model = workload.make().to(device)
    train = TrainSteps(model, workload.input_shape, workload.train_batch or args.train_batch_size,
                       workload.train_steps, device)  # fmt: skip
    sizes = sorted(set(workload.measured_at.values()))
    probe_all = torch.rand(max(n for n, _ in sizes), *workload.input_shape, generator=torch.Generator().manual_seed(1))
    evaluations = {size: Evaluation(model, probe_all[: size[0]], size[1], args.batch_size) for size in sizes}
    train()  # warm-up
    counted = {size: evaluation.count_forward_inputs() for size, evaluation in evaluations.items()}
    for (n, levels), inputs in counted.items():
        assert inputs >= n * levels, f"score() of {n} x {levels} sent only {inputs} inputs through the model"
        assert all(math.isfinite(float(v)) for v in evaluations[(n, levels)].result.values())
    fns: dict[str, Callable[[], object]] = {"train": train}
    fns.update({f"eval {n}x{levels}": evaluation for (n, levels), evaluation in evaluations.items()})
    repeats = args.repeats or (1 if args.quick else 3)
    walls, cpus = interleaved(fns, device, repeats)
    per = PerSample(walls["train"] / train.samples, cpus["train"] / train.samples, {}, {})
    rows = [[workload.name, "training step", f"batch {train.batch} x {train.steps} steps", train.samples,
             repeats, 1e3 * per.train_wall, 1e3 * per.train_cpu, "-"]]  # fmt: skip
    for (n, levels), inputs in counted.items():
        wall, cpu = walls[f"eval {n}x{levels}"] / inputs, cpus[f"eval {n}x{levels}"] / inputs
        rows.append([workload.name, "score() per input", f"{n} probes x {levels} levels", inputs, repeats,
                     1e3 * wall, 1e3 * cpu, f"{wall / per.train_wall:.3f}"])  # fmt: skip
        for setting, size in workload.measured_at.items():
            if size == (n, levels):
                per.eval_wall[setting], per.eval_cpu[setting] = wall, cpu
    print(f"# done {workload.name}: load average {load_average()}", flush=True)
    return per, rows


def share_rows(name: str, data: str, samples: int, per: PerSample, scale: float = 1.0) -> list[list[object]]:
    """One row per setting: the estimated evaluation and epoch seconds and the evaluation's share of the epoch."""
    rows = []
    epoch_wall, epoch_cpu = samples * per.train_wall * scale, samples * per.train_cpu * scale
    for setting in SETTINGS:
        evaluation_wall = setting.forward_inputs * per.eval_wall[setting.name] * scale
        evaluation_cpu = setting.forward_inputs * per.eval_cpu[setting.name] * scale
        every = setting.every_n_epochs
        share_wall = evaluation_wall / every / epoch_wall
        share_cpu = evaluation_cpu / every / epoch_cpu
        rows.append([
            name, data, f"{samples:,}", setting.name, "1" if every == 1 else f"1/{every}",
            f"{setting.forward_inputs:,}", evaluation_wall, epoch_wall, f"{100 * share_wall:.2f}%",
            f"{100 * share_cpu:.2f}%",
        ])  # fmt: skip
    return rows


PER_SAMPLE_HEADERS = [
    "model", "what", "timed", "samples or inputs per call", "rounds", "ms per sample (wall)", "ms per sample (CPU)",
    "evaluation / training per sample (wall)",
]  # fmt: skip
SHARE_HEADERS = [
    "model", "data", "training samples", "setting", "evaluations per epoch", "forward passes per evaluation",
    "seconds per evaluation (estimated)", "seconds per epoch (estimated)", "share = evaluation / epoch (wall)",
    "share (CPU time)",
]  # fmt: skip


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    arguments.add_argument("--train-batch-size", type=int, default=128, help="training batch (per-sample cost)")
    args = arguments.parse_args()
    device = setup(args)
    print(f"# training batch {args.train_batch_size}; evaluation batch {args.batch_size} (score()'s default: 256)")
    measured: dict[str, PerSample] = {}
    per_rows: list[list[object]] = []
    for workload in workloads(args.quick):
        measured[workload.name], rows = measure(workload, args, device)
        per_rows += rows
    print(f"# load average at end: {load_average()}\n")
    print("## Measured per-sample costs (median over interleaved rounds)\n")
    print(table(PER_SAMPLE_HEADERS, per_rows))
    lenet, resnet = measured["LeNet-5"], measured["ResNet-18"]
    rows = share_rows("LeNet-5", "1x28x28 (MNIST-sized)", 60_000, lenet)
    rows += share_rows("ResNet-18", "3x32x32 (CIFAR-10-sized)", 50_000, resnet)
    rows += share_rows("ResNet-18", "3x224x224 (ImageNet-sized), scaled", 1_281_167, resnet, IMAGENET_SCALE)
    print("\n## One evaluation of the callback against one training epoch (estimated from the costs above)\n")
    print(table(SHARE_HEADERS, rows))
    print(
        "\n- seconds per epoch = training samples x (forward + backward + SGD step) per sample, at the training"
        "\n  batch above: compute only (no data loading, no validation loop), so the shares are upper estimates."
        "\n- seconds per evaluation = probes x levels x score()'s wall time per input it sent through the model"
        "\n  (its set-up check of 2 probes included in the count; the callback does that check once per fit)."
        f"\n- 3x224x224 rows: NOT measured; the 32x32 per-sample costs x (224/32)^2 = {IMAGENET_SCALE:.0f} for both"
        "\n  training and evaluation, so the share only reflects the 32x32 ratio and 1,281,167 samples. The"
        "\n  CIFAR-style net keeps full resolution: its seconds are those of 27.2 G multiply-adds per forward"
        "\n  (0.56 G at 32x32); a torchvision-style ImageNet ResNet-18 (7x7 stride-2 stem, max pool: ~1.8 G)"
        "\n  takes far fewer, and its ratio of evaluation to training per sample was not measured."
        "\n- ResNet-18 evaluation cost per input: from score() of 256 probes x 3 levels for every setting (the"
        "\n  same passes of 256 inputs); its noise cache keeps all of those, while the default 512 x 100 of"
        "\n  3x32x32 (629 MiB) exceeds the default cache_mib (256): the noise drawn again is a small cost"
        "\n  next to a ResNet-18 forward (not measured here)."
        "\n- the default callback evaluates GaussianNoise() only (no PGD: PGD runs only when passed). Not"
        "\n  included: its spectral scores (RankMe, alpha-ReQ) and the k-NN accuracy of a labelled probe"
        "\n  (each under 2% of an evaluation, see bench_signals.py / bench_knn.py), logging and the curves figure."
    )
    if args.quick:
        print("\n# quick mode: tiny timings, scaled to the settings' sizes; read no number of it")


if __name__ == "__main__":
    main()
