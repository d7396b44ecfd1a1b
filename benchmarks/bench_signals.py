"""What the collapse signals cost: RankMe and alpha-ReQ of the clean probe, against a whole noise evaluation.

The callback logs RankMe and alpha-ReQ from the level-0 representations it already computes, so
their cost is the clean-level state's ``update`` (a copy of each block's clean rows) and ``compute`` (the
singular values of the N x d matrix). This times those calls inside the callback's own evaluation
path (``_evaluation.measure`` with the paper's 100 noise levels) and reports their share of it, for
the digits example's encoder and the benchmark models, and the state's memory for a wide (d = 4,096)
representation. The left-out shares are two divisions of numbers the metric already holds.

python benchmarks/bench_signals.py [--quick] [--device cuda] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
from _harness import ROOT, parser, setup, synchronize, table
from _models import make_model, make_probe
from torch import nn

from rmqm_callback import RMQM, GaussianNoise
from rmqm_callback.evaluation._stream import FullPrecision, measure
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.metrics._clean_level import CleanLevelScores

sys.path.insert(0, str(ROOT / "examples"))
from _encoders import DigitsEncoder


class TimedScores(CleanLevelScores):
    """The callback's clean-level state with the spectral scores only, adding up the time of its update and compute."""

    def __init__(self, device: torch.device) -> None:
        super().__init__(spectral=True, knn=None)
        self.spent = 0.0
        self._device_for_sync = device

    def _timed(self, work: Callable[[], object]) -> object:
        synchronize(self._device_for_sync)
        start = time.perf_counter()
        result = work()
        synchronize(self._device_for_sync)
        self.spent += time.perf_counter() - start
        return result

    def update(self, representations, indices=None, labels=None):  # type: ignore[no-untyped-def]
        self._timed(lambda: super(TimedScores, self).update(representations, indices, labels))

    def compute(self):  # type: ignore[no-untyped-def]
        return self._timed(lambda: super(TimedScores, self).compute())


class WideMLP(nn.Module):
    """784 -> 4,096: a wide representation, to measure the state's memory and the SVD's time."""

    input_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 4096))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _model(name: str, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "digits":
        model = DigitsEncoder(embedding_dim=64)
        probe = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    elif name == "wide":
        model = WideMLP()
        probe = torch.rand(512, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    else:
        model = make_model(name)
        probe = make_probe(name, 1000 if name == "lenet" else 250)
    return model.to(device).eval(), probe


def evaluate(model: nn.Module, probe: torch.Tensor, levels: int, batch_size: int, device: torch.device):
    """One evaluation as the callback runs it; returns (seconds, seconds in the spectral scores, state bytes)."""
    metric, scores = RMQM().to(device), TimedScores(device).to(device)
    synchronize(device)
    start = time.perf_counter()
    measure(
        metric, model, Encoder(model), Probe(probe), GaussianNoise(levels=levels),
        precision=FullPrecision(), device=device, batch_size=batch_size, clean=scores,
    )
    state_bytes = sum(part.numel() * part.element_size() for part in scores.rows)
    metric.compute()
    scores.compute()
    synchronize(device)
    return time.perf_counter() - start, scores.spent, state_bytes


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    device = setup(args)
    levels = 20 if args.quick else 100
    repeats = args.repeats or (1 if args.quick else 3)
    rows = []
    for name in ("digits", "lenet", "resnet", "wide"):
        model, probe = _model(name, device)
        if args.quick:
            probe = probe[:64]
        evaluate(model, probe, levels, args.batch_size, device)  # warm-up
        runs = [evaluate(model, probe, levels, args.batch_size, device) for _ in range(repeats)]
        total = statistics.median(run[0] for run in runs)
        spent = statistics.median(run[1] for run in runs)
        share = statistics.median(run[1] / run[0] for run in runs)
        width = model(probe[:1].to(device)).shape[1]
        rows.append([name, f"{len(probe)} x {width}", levels, total, spent * 1e3, f"{100 * share:.2f}%",
                     f"{runs[0][2] / 2**20:.2f}"])
    print(table(
        ["model", "probe N x d", "levels", "evaluation s", "spectral ms", "spectral share", "state MiB"], rows
    ))


if __name__ == "__main__":
    main()
