"""What the k-NN accuracy costs: its share of a whole noise evaluation, at N = 512 and 4,096 probes.

The callback computes the k-NN accuracy of a labelled probe from the level-0 representations it
already has, so its cost is ``CleanLevelScores.update`` (a copy of each block's clean rows and
labels) and the k-NN part of ``compute`` (a blockwise N x N cosine-similarity matrix in float64,
exact top-k with the tie rules, the votes). This times those calls inside the callback's own
evaluation path (``measure`` with the paper's 100 noise levels) for the digits example's encoder
(d = 64) and LeNet-5 (d = 128) at N = 512 and 4,096, and a deliberately cheap wide encoder (one
784 -> 4,096 linear layer, N = 512 only: the similarities cost N^2 d), and reports their share of
the evaluation, in wall-clock and in process CPU time (the one to trust on a loaded machine, see
README.md).

python benchmarks/bench_knn.py [--quick] [--device cuda] [--threads 1] [--repeats 2] [--k 1 10] [--models ...]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
from _harness import ROOT, parser, setup, synchronize, table
from _models import make_model, make_probe
from bench_signals import WideMLP
from torch import nn

from rmqm_callback import RMQM, GaussianNoise
from rmqm_callback.evaluation._stream import FullPrecision, measure
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.metrics._clean_level import CleanLevelScores

sys.path.insert(0, str(ROOT / "examples"))
from _encoders import DigitsEncoder


class TimedKNN(CleanLevelScores):
    """The callback's clean-level state with the k-NN accuracy only, adding up its own wall and CPU time."""

    def __init__(self, k: int, device: torch.device) -> None:
        super().__init__(spectral=False, knn=k)
        self.wall = self.cpu = 0.0
        self._device_for_sync = device

    def _timed(self, work: Callable[[], object]) -> object:
        synchronize(self._device_for_sync)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = work()
        synchronize(self._device_for_sync)
        self.wall += time.perf_counter() - start
        self.cpu += time.process_time() - start_cpu
        return result

    def update(self, representations, indices=None, labels=None):  # type: ignore[no-untyped-def]
        self._timed(lambda: super(TimedKNN, self).update(representations, indices, labels))

    def compute(self):  # type: ignore[no-untyped-def]
        return self._timed(lambda: super(TimedKNN, self).compute())


def _model(name: str, n: int, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "digits":
        model: nn.Module = DigitsEncoder(embedding_dim=64)
        probe = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    elif name == "wide":
        model, probe = WideMLP(), torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    else:
        model, probe = make_model(name), make_probe(name, n)
    return model.to(device).eval(), probe


def evaluate(model: nn.Module, probe: Probe, k: int, levels: int, batch_size: int, device: torch.device):
    """One evaluation as the callback runs it: (wall s, CPU s, k-NN wall s, k-NN CPU s, accuracy)."""
    metric, knn = RMQM().to(device), TimedKNN(k, device).to(device)
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    measure(
        metric, model, Encoder(model), probe, GaussianNoise(levels=levels),
        precision=FullPrecision(), device=device, batch_size=batch_size, clean=knn,
    )  # fmt: skip
    metric.compute()
    accuracy = float(knn.compute()["knn_accuracy"])
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu, knn.wall, knn.cpu, accuracy


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    arguments.add_argument("--k", type=int, nargs="+", default=[1, 10], help="the k values to time")
    arguments.add_argument("--models", nargs="+", default=["digits", "lenet", "wide"], help="the encoders to time")
    args = arguments.parse_args()
    device = setup(args)
    levels = 10 if args.quick else 100
    rows = []
    for name in args.models:
        sizes = (64, 256) if args.quick else (512,) if name == "wide" else (512, 4096)
        for n in sizes:
            model, inputs = _model(name, n, device)
            labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(2))
            probe = Probe(inputs, labels)
            width = model(inputs[:1].to(device)).shape[1]
            warm = Probe(inputs[:64], labels[:64])
            for k in args.k:
                evaluate(model, warm, k, levels, args.batch_size, device)  # warm-up: one block
                repeats = args.repeats or (1 if args.quick else 3 if n <= 512 else 2)
                runs = [evaluate(model, probe, k, levels, args.batch_size, device) for _ in range(repeats)]
                wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                knn_wall, knn_cpu = statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs)
                wall_share = statistics.median(r[2] / r[0] for r in runs)
                cpu_share = statistics.median(r[3] / r[1] for r in runs)
                rows.append([
                    name, f"{n} x {width}", k, levels, wall, knn_wall * 1e3, f"{100 * wall_share:.2f}%",
                    cpu, knn_cpu * 1e3, f"{100 * cpu_share:.2f}%",
                ])  # fmt: skip
                print(table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
    print(table(HEADERS, rows))


HEADERS = [
    "model", "probe N x d", "k", "levels", "evaluation s", "k-NN ms", "k-NN share (wall)",
    "evaluation CPU s", "k-NN CPU ms", "k-NN share (CPU)",
]  # fmt: skip


if __name__ == "__main__":
    main()
