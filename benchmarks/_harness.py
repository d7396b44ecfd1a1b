"""Shared helpers: import path, machine header, timing with warm-up and median, table printing."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
try:  # an installed package or PYTHONPATH wins (to benchmark a patched copy); else this checkout
    rmqm_callback = importlib.import_module("rmqm_callback")
except ImportError:
    sys.path.append(str(ROOT))
    rmqm_callback = importlib.import_module("rmqm_callback")
idle_cores = importlib.import_module("rmqm_callback.alterations._ahead").idle_cores


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--quick", action="store_true", help="small sizes, to check that the script works")
    result.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    result.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: robust to other processes on a small shared machine)",
    )
    result.add_argument("--repeats", type=int, default=None, help="timed repeats (median is reported)")
    result.add_argument("--batch-size", type=int, default=256)
    return result


def setup(args: argparse.Namespace) -> torch.device:
    """Fix the thread count, print the machine header and return the device."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(machine_header(device, args))
    return device


def machine_header(device: torch.device, args: argparse.Namespace) -> str:
    lines = [
        f"# machine: {platform.machine()} {platform.processor() or ''}".rstrip(),
        f"# cpu count: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, idle cores: {idle_cores()}",
        f"# python {platform.python_version()}, torch {torch.__version__}, device: {device}",
        f"# rmqm_callback from: {Path(rmqm_callback.__file__).parent}",
        f"# mode: {'quick' if args.quick else 'full'}, batch size {args.batch_size}",
        f"# load average at start (1/5/15 min): {load_average()}",
    ]
    if device.type == "cuda":
        lines.insert(3, f"# gpu: {torch.cuda.get_device_name(device)}")
    return "\n".join(lines)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs (perf_counter)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_rounds(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process CPU times of each function in every round, the functions timed in turn within a round.

    Interleaving spreads background load (other processes on a shared machine) over all of them.
    The CPU time (``time.process_time``, all threads of this process) is what to compare on a
    loaded CPU with a fixed thread count: it does not count time the process waited for a core.
    On CUDA use the wall times (the CPU time there is mostly launch overhead and waiting).
    """
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            walls[name].append(time.perf_counter() - start)
            cpus[name].append(time.process_time() - start_cpu)
    return walls, cpus


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median process CPU time of each function over :func:`interleaved_rounds`."""
    walls, cpus = interleaved_rounds(fns, device, repeats)
    median = statistics.median
    return {k: median(v) for k, v in walls.items()}, {k: median(v) for k, v in cpus.items()}


def bracketing_floors(rounds: dict[str, list[float]]) -> list[float]:
    """Per round, the mean of the floor timed before (``"floor"``) and after (``"floor_after"``) the rest."""
    return [(before + after) / 2 for before, after in zip(rounds["floor"], rounds["floor_after"], strict=True)]


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float, float]:
    """Median, lower and upper quartile of the per-round ratios ``numerators[i] / denominators[i]``.

    A ratio within a round compares two runs made seconds apart; on a machine whose speed drifts
    between rounds (a shared virtual machine) it is much steadier than a ratio of two medians.
    """
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True))
    if len(ratios) < 4:
        return statistics.median(ratios), ratios[0], ratios[-1]
    lower, _, upper = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), lower, upper


class ForwardClock:
    """Wall time spent inside a module's forward calls (forward pre-hook and hook), for within-call shares.

    ``with ForwardClock(model) as clock: run()`` then ``clock.inside`` (s) and ``clock.calls``.
    Timed from the same call, the share of a run's time spent outside the forward passes does not
    depend on how fast the machine was that second.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device | None = None) -> None:
        self.module, self.device = module, device
        self.inside, self.calls, self._start = 0.0, 0, 0.0

    def _before(self, *_: object) -> None:
        if self.device is not None:
            synchronize(self.device)
        self._start = time.perf_counter()

    def _after(self, *_: object) -> None:
        if self.device is not None:
            synchronize(self.device)
        self.inside += time.perf_counter() - self._start
        self.calls += 1

    def __enter__(self) -> ForwardClock:
        self._handles = [
            self.module.register_forward_pre_hook(self._before),
            self.module.register_forward_hook(self._after),
        ]
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self._handles:
            handle.remove()


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def timed_once(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats get 3 significant decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
