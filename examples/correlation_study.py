"""Replicate the RMQM paper's section 4 on the digits: does RMQM predict downstream 1-NN accuracy?

For every encoder of a grid (the paper's five methods x embedding sizes x {SGD with Nesterov momentum,
Adam} x seeds), trained on digit classes 0-4:

* RMQM under white noise (``rmqm_callback.score``, the paper's 100 levels from std 0 to 1) on a fixed
  held-out probe of classes 0-4, and its components D, D_RC, P_RC;
* RankMe and alpha-ReQ (``rmqm_callback.functional.spectral``) of the same probe's clean embeddings;
* downstream accuracy: 1-nearest-neighbour (cosine) on the unseen classes 5-9, fitted on one fixed
  half of their images and tested on the other half; "normalised accuracy" is that accuracy min-max
  scaled over all encoders of the grid, ``(acc - min) / (max - min)``. With one downstream task this is
  an affine map, so every correlation with it equals the correlation with the raw accuracy.

Outputs in ``--output-dir`` (default ``outputs/correlation_study``): ``encoders.csv`` (one row per
encoder), ``correlations.md`` (Pearson and Spearman coefficients of each score with accuracy,
percentile-bootstrap 95% intervals over encoders) and ``rmqm_vs_accuracy.png`` (the paper's Figure 4:
RMQM against normalised accuracy). Each encoder is trained in its own process (``--workers``, one torch
thread each); the results do not depend on the number of workers.

Run from the repository root::

    python examples/correlation_study.py --quick                            # 10 encoders, 10-30 s on 2 CPU cores
    python examples/correlation_study.py --output-dir examples/results      # 120 encoders, 3.5-13 minutes
"""

from __future__ import annotations

import argparse
import csv
import functools
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _digits*
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import numpy as np
import pytorch_lightning as pl
import torch
from _digits import (
    embed,
    holdout_split,
    knn_accuracy,
    load_digits_tensors,
    quiet_lightning,
    quiet_trainer,
    split_indices,
)
from _digits_model import METHODS, OPTIMIZERS, EncoderModule
from _digits_stats import correlations, markdown_table, min_max, pearson
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import GaussianNoise, score
from rmqm_callback.functional.spectral import alpha_req, rankme

SEEN, UNSEEN = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
LEARNING_RATES = {"adam": 1e-3, "sgd": 0.05}
#: Score label in the table -> CSV column; 1/D_RC and 1/P_RC are the terms of RMQM (eq. 4).
SCORES = {
    "RMQM": "RMQM",
    "D": "D",
    "1/D_RC": "inv_D_RC",
    "1/P_RC": "inv_P_RC",
    "RankMe": "rankme",
    "alpha-ReQ": "alpha_req",
    "-abs(alpha-ReQ - 1)": "neg_alpha_req_distance",
}
#: One encoder's work, ``(job, settings) -> row``: a module-level function, so that worker processes can run it.
Task = Callable[[dict[str, object], dict[str, int]], dict[str, object]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; ``--quick`` replaces the grid by a small one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--dims", nargs="+", type=int, default=[16, 32, 64, 128], help="embedding sizes")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--probe-size", type=int, default=256, help="held-out probe of classes 0-4")
    parser.add_argument("--levels", type=int, default=100, help="noise levels incl. the clean one (paper: 100)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (seed 0)")
    parser.add_argument("--workers", type=int, default=2, help="encoders trained in parallel, 1 thread each")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/correlation_study"))
    parser.add_argument(
        "--quick", action="store_true", help="small-grid defaults: d in {16, 64}, Adam, seed 0, 4 epochs, 20 levels"
    )
    if parser.parse_args(argv).quick:  # smaller defaults; explicit arguments still win
        parser.set_defaults(dims=[16, 64], optimizers=["adam"], seeds=[0], epochs=4, probe_size=128, levels=20)
    return parser.parse_args(argv)


@functools.lru_cache(maxsize=1)
def load_data(probe_size: int) -> dict[str, torch.Tensor]:
    """Classes 0-4 cut into training images and a held-out probe; classes 5-9 cut into two halves."""
    images, labels = load_digits_tensors(SEEN)
    train, _, probe = holdout_split(len(images), probe_size, val_fraction=0.0, seed=0)
    unseen_images, unseen_labels = load_digits_tensors(UNSEEN)
    fit, test = split_indices(len(unseen_images), (0.5, 0.5), seed=0)
    return {
        "train_x": images[train],
        "train_y": labels[train],
        "probe_x": images[probe],
        "probe_y": labels[probe],
        "fit_x": unseen_images[fit],
        "fit_y": unseen_labels[fit],
        "test_x": unseen_images[test],
        "test_y": unseen_labels[test],
    }


def raw_pixel_accuracy(probe_size: int) -> float:
    """The downstream 1-NN accuracy on the raw 64 pixels: the baseline no encoder is needed for."""
    data = load_data(probe_size)
    return knn_accuracy(data["fit_x"].flatten(1), data["fit_y"], data["test_x"].flatten(1), data["test_y"])


def init_worker() -> None:
    """One torch thread per process (fastest for this tiny model) and a quiet Lightning."""
    torch.set_num_threads(1)
    quiet_lightning()


def train_encoder(job: dict[str, object], settings: dict[str, int]) -> tuple[EncoderModule, pl.Trainer]:
    """Train one encoder of the grid on digits 0-4; the same job and settings give the same weights."""
    data = load_data(settings["probe_size"])
    pl.seed_everything(int(job["seed"]), verbose=False)
    method, optimizer = str(job["method"]), str(job["optimizer"])
    model = EncoderModule(method, int(job["embedding_dim"]), optimizer, LEARNING_RATES[optimizer], len(SEEN))
    loader = DataLoader(
        TensorDataset(data["train_x"], data["train_y"]), batch_size=settings["batch_size"], shuffle=True
    )
    trainer = quiet_trainer(settings["epochs"], loader)
    trainer.fit(model, loader)
    return model, trainer


def downstream_accuracy(model: EncoderModule, probe_size: int) -> float:
    """The downstream score: 1-NN (cosine) accuracy on digits 5-9, fitted on one half and tested on the other."""
    data = load_data(probe_size)
    return knn_accuracy(embed(model, data["fit_x"]), data["fit_y"], embed(model, data["test_x"]), data["test_y"])


def train_and_score(job: dict[str, object], settings: dict[str, int]) -> dict[str, object]:
    """Train one encoder of the grid and measure all its scores and its downstream accuracy."""
    start = time.perf_counter()
    model, trainer = train_encoder(job, settings)
    data = load_data(settings["probe_size"])
    rmqm = score(model, data["probe_x"], GaussianNoise(levels=settings["levels"]))
    probe_z = embed(model, data["probe_x"])
    alpha = float(alpha_req(probe_z))
    train_z = embed(model, data["train_x"])
    return {
        **job,
        "epochs": settings["epochs"],
        "train_loss": float(trainer.callback_metrics["train_loss"]),
        **{key: float(rmqm[key]) for key in ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se")},
        "inv_D_RC": 1.0 / float(rmqm["D_RC"]),
        "inv_P_RC": 1.0 / float(rmqm["P_RC"]),
        "rankme": float(rankme(probe_z)),
        "alpha_req": alpha,
        "neg_alpha_req_distance": -abs(alpha - 1.0),
        "seen_knn_accuracy": knn_accuracy(train_z, data["train_y"], probe_z, data["probe_y"]),
        "knn_accuracy": downstream_accuracy(model, settings["probe_size"]),
        "seconds": time.perf_counter() - start,
    }


def run_grid(
    jobs: list[dict[str, object]], settings: dict[str, int], workers: int, task: Task | None = None
) -> list[dict[str, object]]:
    """Run ``task`` (default :func:`train_and_score`) on every job, in ``workers`` processes when > 1.

    Prints one line per finished encoder (the row's ``RMQM``, ``knn_accuracy`` and ``seconds``); rows come
    back in the order of ``jobs``.
    """
    task = train_and_score if task is None else task
    rows: list[dict[str, object]] = []

    def report(row: dict[str, object]) -> None:
        rows.append(row)
        print(
            f"[{len(rows):>3}/{len(jobs)}] {row['method']:<18} d={row['embedding_dim']:<3} {row['optimizer']:<4}"
            f" seed={row['seed']}  RMQM {row['RMQM']:.3f}  1-NN(5-9) {row['knn_accuracy']:.3f}"
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


def plot_regression(rows: list[dict[str, object]], path: Path) -> float:
    """The paper's Figure 4: RMQM against normalised accuracy, coloured by method, with a fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([row["RMQM"] for row in rows], dtype=float)
    y = np.array([row["normalised_accuracy"] for row in rows], dtype=float)
    r = pearson(x, y)
    figure, axes = plt.subplots(figsize=(8.6, 4.8))
    markers = {"adam": "o", "sgd": "^"}
    for colour, method in enumerate(dict.fromkeys(row["method"] for row in rows)):
        for optimizer, marker in markers.items():
            mine = [i for i, row in enumerate(rows) if row["method"] == method and row["optimizer"] == optimizer]
            if not mine:
                continue
            label = f"{method} ({optimizer})"
            axes.scatter(x[mine], y[mine], color=f"C{colour}", marker=marker, label=label, alpha=0.8, s=28)
    slope, intercept = np.polyfit(x, y, 1)
    grid = np.linspace(x.min(), x.max(), 50)
    axes.plot(grid, slope * grid + intercept, color="black", linewidth=1.5, label="least-squares fit")
    axes.set_xlabel("RMQM (white noise, held-out digits 0-4)")
    axes.set_ylabel("normalised 1-NN accuracy on digits 5-9")
    axes.set_title(f"RMQM vs downstream accuracy: Pearson r = {r:.2f} (n = {len(rows)})")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return r


def within_groups_table(rows: list[dict[str, object]], key: str) -> str:
    """A markdown table: Pearson r of RMQM with accuracy among the encoders sharing each value of ``key``."""
    lines = [f"| {key} | n | r |", "|---|---:|---:|"]
    for value in dict.fromkeys(row[key] for row in rows):
        mine = [row for row in rows if row[key] == value]
        r = pearson(np.array([row["RMQM"] for row in mine]), np.array([row["knn_accuracy"] for row in mine]))
        lines.append(f"| {value} | {len(mine)} | {f'{r:+.2f}' if len(mine) >= 4 else '-'} |")
    return "\n".join(lines) + "\n"


def write_outputs(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    """Write the CSV, the markdown table and the plot; return the table."""
    args.output_dir.mkdir(parents=True, exist_ok=True)
    accuracy = np.array([row["knn_accuracy"] for row in rows], dtype=float)
    for row, value in zip(rows, min_max(accuracy)):
        row["normalised_accuracy"] = float(value)
    with open(args.output_dir / "encoders.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    target = np.array([row["normalised_accuracy"] for row in rows], dtype=float)
    scores = {label: np.array([row[column] for row in rows], dtype=float) for label, column in SCORES.items()}
    table = markdown_table(correlations(scores, target, args.resamples, seed=0))
    settings = (
        f"{len(rows)} encoders: methods {', '.join(args.methods)}; embedding sizes {args.dims};"
        f" optimizers {args.optimizers}; seeds {args.seeds}; {args.epochs} epochs on digits 0-4."
        f" RMQM: white noise, {args.levels} levels, {args.probe_size} held-out probes of digits 0-4."
        f" Accuracy: 1-NN on digits 5-9 (fit on one half, test on the other), min-max scaled over encoders"
        f" (range {accuracy.min():.3f} to {accuracy.max():.3f}; raw pixels: {raw_pixel_accuracy(args.probe_size):.3f})."
        " Intervals: percentile bootstrap over"
        f" encoders, {args.resamples} resamples, seed 0."
    )
    text = (
        f"# RMQM vs downstream accuracy on the digits\n\n{settings}\n\n"
        f"## Correlation of each score with normalised accuracy\n\n{table}\n"
        "## Pearson r of RMQM with accuracy within groups of encoders (- when a group has fewer than 4)\n\n"
        f"{within_groups_table(rows, 'method')}\n{within_groups_table(rows, 'embedding_dim')}"
    )
    (args.output_dir / "correlations.md").write_text(text)
    plot_regression(rows, args.output_dir / "rmqm_vs_accuracy.png")
    return text


def main(argv: list[str] | None = None) -> None:
    """Train and score the grid, then write the CSV, the correlation table and the regression plot."""
    args = parse_args(argv)
    jobs = grid(args, "correlations")
    settings = {k: getattr(args, k) for k in ("epochs", "batch_size", "probe_size", "levels")}
    print(f"Training and scoring {len(jobs)} encoders with {args.workers} worker(s) ...", flush=True)
    start = time.perf_counter()
    rows = run_grid(jobs, settings, args.workers)
    text = write_outputs(rows, args)
    print("\n" + text)
    print(f"Wrote {args.output_dir}/encoders.csv, correlations.md, rmqm_vs_accuracy.png")
    print(f"Total {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
