"""Cost versus fidelity of RMQM: how far can the noise levels and the probe be cut before the ranking moves?

Each evaluation of RMQM under white noise costs ``levels x N`` forward passes (the paper: 100 levels, 256
probes). This study retrains the correlation study's encoders of ``--dataset`` (default digits) exactly
as ``correlation_study.py`` does (same grid, seeds and training settings, so the same weights) and scores
every encoder with ``rmqm_callback.score(model, probe[:n], GaussianNoise(levels=L))`` for L in {10, 25,
50, 100} and n in {64, 128, 256}, the first ``n`` inputs of the same 256-input held-out probe of the seen
classes (digits 0-4). For each setting:

* fidelity: Spearman's rho of its ranking of the encoders with the full setting's (100 levels, 256 probes),
  with a percentile-bootstrap 95% interval over encoders;
* usefulness: Pearson's r and Spearman's rho of its RMQM with the downstream 1-NN accuracy on the unseen
  classes (digits 5-9);
* cost: ``L x n`` forward passes per encoder, relative to ``100 x 256``, and the measured seconds of the
  ``score`` call (one torch thread; the median over encoders).

The full setting's RMQM and accuracy are checked against the correlation study's committed
``examples/results/encoders_<dataset>.csv`` (``--reference``) when the training settings are that study's.

Outputs in ``--output-dir`` (default ``outputs/cost_fidelity_study``): ``cost_fidelity_<dataset>.csv`` (one
row per encoder x setting) and ``cost_fidelity_<dataset>.md`` (the table, the settings and the run's wall
time). All numbers
but the seconds are deterministic and independent of ``--workers`` (processes, one torch thread each).

Run from the repository root::

    python examples/cost_fidelity_study.py --quick                          # 3 encoders, 15-30 s on 2 CPU cores
    python examples/cost_fidelity_study.py --output-dir examples/results    # 120 encoders
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # correlation_study, the examples' _modules
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import correlation_study as study
import numpy as np
from _data import DATASETS, get_dataset
from _grid import grid, run_grid
from _methods import METHODS, OPTIMIZERS
from _stats import bootstrap_ci, correlations, spearman

from rmqm_callback import GaussianNoise, score

LEVELS = (10, 25, 50, 100)
PROBES = (64, 128, 256)
FULL = (100, 256)  # the paper's setting, the reference ranking
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "examples" / "results"
JOB_KEYS = ("method", "optimizer", "embedding_dim", "seed")
COMPONENTS = ("RMQM", "D", "D_RC", "P_RC")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; the defaults are the correlation study's grid, ``--quick`` a small one."""
    dataset = argparse.ArgumentParser(add_help=False)
    dataset.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    base = study.parse_args(["--dataset", dataset.parse_known_args(argv)[0].dataset])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[dataset])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=base.methods)
    parser.add_argument("--dims", nargs="+", type=int, default=base.dims, help="embedding sizes")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=base.optimizers)
    parser.add_argument("--seeds", nargs="+", type=int, default=base.seeds)
    parser.add_argument("--epochs", type=int, default=base.epochs)
    parser.add_argument("--train-size", type=int, default=base.train_size, help="training inputs kept")
    parser.add_argument("--batch-size", type=int, default=base.batch_size)
    parser.add_argument("--resamples", type=int, default=base.resamples, help="bootstrap resamples (seed 0)")
    parser.add_argument("--workers", type=int, default=base.workers, help="encoders in parallel, 1 thread each")
    parser.add_argument("--reference", type=Path, help="correlation study CSV to check against (default: committed)")
    parser.add_argument("--cache-dir", type=Path, default=base.cache_dir, help="where generated data are kept")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/cost_fidelity_study"))
    parser.add_argument("--quick", action="store_true", help="small grid: 3 methods, d=16, Adam, seed 0, 3 epochs")
    if parser.parse_args(argv).quick:  # smaller defaults; explicit arguments still win
        parser.set_defaults(
            methods=["cross-entropy", "nt-xent", "triplet-ss"],
            dims=[16],
            optimizers=["adam"],
            seeds=[0],
            epochs=3,
            resamples=500,
        )
        parser.set_defaults(train_size=study.QUICK[base.dataset]["train_size"])
    parser.set_defaults(reference=RESULTS / f"encoders_{base.dataset}.csv")
    return parser.parse_args(argv)


def train_and_measure(job: dict[str, object], settings: dict[str, object]) -> dict[str, object]:
    """Train one encoder as the correlation study does, then score it at every (levels, probes) setting.

    Returns the encoder's row for :func:`_grid.run_grid` (its full-setting ``RMQM``, its
    ``knn_accuracy``, the total ``seconds``) with the per-setting rows under ``"settings"``.
    """
    start = time.perf_counter()
    model, _ = study.train_encoder(job, settings)
    probe = study.load_data(settings)["probe_x"]
    accuracy = study.downstream_accuracy(model, settings)
    score(model, probe[:8], GaussianNoise(levels=3))  # warm-up: first-call overheads stay out of the timings
    rows = []
    for levels in LEVELS:
        for probes in PROBES:
            tic = time.perf_counter()
            result = score(model, probe[:probes], GaussianNoise(levels=levels))
            seconds = time.perf_counter() - tic
            rows.append(
                {
                    **job,
                    "epochs": settings["epochs"],
                    "levels": levels,
                    "probes": probes,
                    "forward_passes": levels * probes,
                    "relative_cost": levels * probes / (FULL[0] * FULL[1]),
                    **{key: float(result[key]) for key in COMPONENTS},
                    "seconds": seconds,
                    "knn_accuracy": accuracy,
                }
            )
    full = next(row for row in rows if (row["levels"], row["probes"]) == FULL)
    total = time.perf_counter() - start
    return {**job, "RMQM": full["RMQM"], "knn_accuracy": accuracy, "settings": rows, "seconds": total}


def reproduction(rows: list[dict[str, object]], reference: Path) -> str:
    """A sentence: do the full-setting RMQM and accuracy equal the ``reference`` CSV's, encoder by encoder?"""
    shown = reference.resolve().relative_to(ROOT) if reference.resolve().is_relative_to(ROOT) else reference
    if not reference.is_file():
        return f"Not checked against a reference: {shown} does not exist."
    with open(reference, newline="") as handle:
        known = {tuple(r[k] for k in (*JOB_KEYS, "epochs")): r for r in csv.DictReader(handle)}
    full = [row for row in rows if (row["levels"], row["probes"]) == FULL]
    pairs = [(row, known.get(tuple(str(row[k]) for k in (*JOB_KEYS, "epochs")))) for row in full]
    pairs = [(row, ref) for row, ref in pairs if ref is not None]
    if not pairs:
        return f"Not checked against {shown}: none of these {len(full)} encoders (and epochs) is in it."
    d_rmqm = max(abs(row["RMQM"] - float(ref["RMQM"])) for row, ref in pairs)
    d_acc = max(abs(row["knn_accuracy"] - float(ref["knn_accuracy"])) for row, ref in pairs)
    same = sum(row["RMQM"] == float(r["RMQM"]) and row["knn_accuracy"] == float(r["knn_accuracy"]) for row, r in pairs)
    return (
        f"Full setting against {shown}: RMQM and 1-NN accuracy identical for {same} of {len(pairs)} encoders"
        f" (of {len(full)}); largest differences {d_rmqm:.2e} (RMQM) and {d_acc:.2e} (accuracy)."
    )


def interval(value: float, ci: tuple[float, float]) -> str:
    """``+0.97 [+0.95, +0.98]``."""
    return f"{value:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def fidelity_table(rows: list[dict[str, object]], resamples: int) -> str:
    """The markdown table: one line per setting, cost then fidelity then correlation with accuracy."""
    settings = list(dict.fromkeys((row["levels"], row["probes"]) for row in rows))
    by_setting = {s: [row for row in rows if (row["levels"], row["probes"]) == s] for s in settings}
    full = np.array([row["RMQM"] for row in by_setting[FULL]])
    full_seconds = np.array([row["seconds"] for row in by_setting[FULL]])
    accuracy = np.array([row["knn_accuracy"] for row in by_setting[FULL]])
    lines = [
        "| levels | probes | forward passes per encoder | relative cost | seconds per encoder | relative seconds"
        " | mean RMQM | Spearman with full [95% CI] | Pearson r with accuracy [95% CI]"
        " | Spearman with accuracy [95% CI] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (levels, probes), mine in by_setting.items():
        rmqm = np.array([row["RMQM"] for row in mine])
        seconds = np.array([row["seconds"] for row in mine])
        [downstream] = correlations({"RMQM": rmqm}, accuracy, resamples, seed=0)
        rho = spearman(rmqm, full)
        lines.append(
            f"| {levels} | {probes} | {levels * probes:,} | {levels * probes / (FULL[0] * FULL[1]):g}"
            f" | {np.median(seconds):.3f} | {np.median(seconds / full_seconds):.3f} | {rmqm.mean():.3f}"
            f" | {interval(rho, bootstrap_ci(rmqm, full, spearman, resamples, seed=0))}"
            f" | {interval(downstream.pearson, downstream.pearson_ci)}"
            f" | {interval(downstream.spearman, downstream.spearman_ci)} |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(rows: list[dict[str, object]], args: argparse.Namespace, start: float, check: str) -> str:
    """Write ``cost_fidelity_<dataset>.csv`` and ``.md`` (wall time counted from ``start``); return the markdown."""
    args.output_dir.mkdir(parents=True, exist_ok=True)
    dataset = get_dataset(args.dataset)
    seen, unseen = dataset.describe(dataset.seen), dataset.describe(dataset.unseen)
    with open(args.output_dir / f"cost_fidelity_{args.dataset}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    encoders = len(rows) // (len(LEVELS) * len(PROBES))
    table = fidelity_table(rows, args.resamples)
    wall = time.perf_counter() - start
    text = (
        f"# Cost versus fidelity of RMQM on {dataset.title}\n\n"
        f"{encoders} encoders: methods {', '.join(args.methods)}; embedding sizes {args.dims}; optimizers"
        f" {args.optimizers}; seeds {args.seeds}; {args.epochs} epochs on {seen}, trained as in"
        " correlation_study.py. RMQM: `score(model, probe[:n], GaussianNoise(levels=L))`, white noise of std"
        f" 0 to 1, the first n of one 256-input held-out probe of {seen}; full setting L = 100, n = 256."
        f" Accuracy: 1-NN on {unseen} (fit on one half, test on the other). Forward passes: L x n per"
        " encoder; seconds: the `score` call on one torch thread, median over encoders (relative seconds:"
        f" median of each encoder's ratio to its full-setting call), {args.workers} worker process(es) on a"
        " shared CPU, so timings are indicative. Mean RMQM: over encoders (absolute values shift with L and"
        f" n). Intervals: percentile bootstrap over encoders, {args.resamples} resamples, seed 0.\n\n"
        f"{table}\n{check}\n\n"
        f"Wall time of this run: {wall:.0f} s ({wall / 60:.1f} min) with {args.workers} worker(s).\n"
    )
    (args.output_dir / f"cost_fidelity_{args.dataset}.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    """Train the grid, score every encoder at every setting, and write the CSV and the table."""
    args = parse_args(argv)
    base = study.parse_args(["--dataset", args.dataset])
    jobs = grid(args, "rankings")
    settings = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "probe_size": FULL[1],
        "levels": FULL[0],
        "train_size": args.train_size,
        "cache_dir": args.cache_dir,
    }
    study.load_data(settings)  # make and cache a generated data set once, before the workers read it
    print(f"Training {len(jobs)} encoders, scoring each at {len(LEVELS) * len(PROBES)} settings ...", flush=True)
    start = time.perf_counter()
    encoders = run_grid(jobs, settings, args.workers, train_and_measure)
    rows = [row for encoder in encoders for row in encoder["settings"]]
    same_training = (args.batch_size, FULL[1], args.train_size) == (base.batch_size, base.probe_size, base.train_size)
    check = reproduction(rows, args.reference) if same_training else "Not checked: training settings differ."
    text = write_outputs(rows, args, start, check)
    print("\n" + text)
    print(f"Wrote {args.output_dir}/cost_fidelity_{args.dataset}.csv, cost_fidelity_{args.dataset}.md")


if __name__ == "__main__":
    main()
