"""The studies' grids of encoders: one job per method x optimizer x embedding size x seed, run in worker processes."""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

from _fits import init_worker

#: One encoder's work, ``(job, settings) -> row``: a module-level function, so that worker processes can run it.
Task = Callable[[dict[str, object], dict[str, object]], dict[str, object]]


def grid(args: argparse.Namespace, needs: str) -> list[dict[str, object]]:
    """One job per method x optimizer x embedding size x seed of ``args``; at least 3 (``needs`` says for what)."""
    jobs: list[dict[str, object]] = [
        {"method": m, "optimizer": o, "embedding_dim": d, "seed": s}
        for m in args.methods
        for o in args.optimizers
        for d in args.dims
        for s in args.seeds
    ]
    if len(jobs) < 3:
        raise SystemExit(f"The grid has {len(jobs)} encoder(s); {needs} need at least 3.")
    return jobs


def run_grid(jobs: list[dict[str, object]], settings: dict[str, object], workers: int, task: Task) -> list[dict]:
    """Run ``task`` on every job, in ``workers`` spawned processes (one torch thread each) when > 1.

    Prints one line per finished encoder (the row's ``RMQM``, ``knn_accuracy`` and ``seconds``); rows come
    back in the order of ``jobs``.
    """
    rows: list[dict[str, object]] = []

    def report(row: dict[str, object]) -> None:
        rows.append(row)
        print(
            f"[{len(rows):>3}/{len(jobs)}] {row['method']:<18} d={row['embedding_dim']:<3} {row['optimizer']:<4}"
            f" seed={row['seed']}  RMQM {row['RMQM']:.3f}  1-NN(unseen) {row['knn_accuracy']:.3f}"
            f"  ({row['seconds']:.1f} s)",
            flush=True,
        )

    if workers <= 1:
        init_worker()
        for job in jobs:
            report(task(job, settings))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
            for future in as_completed([pool.submit(task, job, settings) for job in jobs]):
                report(future.result())
    order = {tuple(job.values()): i for i, job in enumerate(jobs)}
    return sorted(rows, key=lambda row: order[tuple(row[key] for key in jobs[0])])
