"""What each recorded run's collapse signals reached: one table per data set, from collapse_explore.py's CSVs.

For every run of ``examples/results/collapse_runs_<dataset>.csv`` (recorded by ``collapse_explore.py``),
over the evaluations after training began (epochs >= 1): the lowest RankMe, the lowest centred
RankMe, the lowest D (256 probes x 100 levels), the highest non-finite share, the highest mean L2
norm of the clean probe's representations (and its value before training), and the probe's 1-NN
accuracy at epoch 0 and at the last epoch. NaN where the representations were not finite. These
are the values an ``EarlyStopping`` threshold on each signal would have to separate. Run from the
repository root::

    python examples/collapse_summary.py --datasets mnist1d digits_centred glyphs
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _float(text: str) -> float:
    return float(text) if text not in ("", "nan") else math.nan


def _of_finite(pick: Callable[[list[float]], float], values: list[float]) -> float:
    """``pick`` (``min`` or ``max``) of ``values``; NaN if any is NaN (the representations were not finite)."""
    finite = [value for value in values if not math.isnan(value)]
    return pick(finite) if len(finite) == len(values) and finite else math.nan


def summary(path: Path) -> str:
    """The Markdown table of one CSV."""
    runs: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(path.open()):
        runs.setdefault(row["run"], []).append(row)
    lines = [
        f"## {path.name}",
        "",
        "| run | group | epochs | lowest RankMe | lowest centred RankMe | lowest D | highest non-finite share"
        " | mean norm at epoch 0 | highest mean norm | 1-NN at epoch 0 | 1-NN at the end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run, rows in runs.items():
        rows.sort(key=lambda row: int(row["epoch"]))
        trained = [row for row in rows if int(row["epoch"]) >= 1]
        cells = [
            _of_finite(min, [_float(row["rankme"]) for row in trained]),
            _of_finite(min, [_float(row["rankme_centred"]) for row in trained]),
            _of_finite(min, [_float(row["L100_D"]) for row in trained]),
            max((_float(row["L100_nonfinite_share"]) for row in trained), default=math.nan),
            _float(rows[0]["mean_norm"]),
            _of_finite(max, [_float(row["mean_norm"]) for row in trained]),
            _float(rows[0]["knn_accuracy"]),
            _float(rows[-1]["knn_accuracy"]),
        ]
        shown = ["NaN" if math.isnan(v) else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}" for v in cells]
        shown[5] = "NaN" if math.isnan(cells[5]) else f"{cells[5]:.3g}"  # norms span 12 orders of magnitude
        lines.append(f"| {run} | {rows[0]['group']} | {len(trained)} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def grid_rows(path: Path, method: str, optimizer: str) -> str:
    """The spectral scores of the healthy encoders of one method and optimiser in a correlation study's grid."""
    lines = [
        f"## {path.name}: {method}, {optimizer} (healthy encoders of the correlation grid, after 30 epochs)",
        "",
        "| embedding size | seed | RankMe | centred RankMe | D | collapsed | 1-NN, seen classes | 1-NN downstream |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in csv.DictReader(path.open()):
        if row["method"] == method and row["optimizer"] == optimizer:
            values = [float(row[key]) for key in ("rankme", "rankme_centred", "D", "seen_knn_accuracy", "knn_accuracy")]
            lines.append(
                f"| {row['embedding_dim']} | {row['seed']} | {values[0]:.2f} | {values[1]:.2f} | {values[2]:.4f}"
                f" | {row['collapsed']} | {values[3]:.3f} | {values[4]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "digits_centred", "glyphs"])
    parser.add_argument("--output", type=Path, default=RESULTS / "collapse_runs_summary.md")
    args = parser.parse_args()
    parts = [
        "# The collapse signals each recorded run reached (epochs >= 1)",
        "",
        "From `examples/collapse_summary.py` over `collapse_explore.py`'s recordings (12 runs x 10 epochs, seed 0,"
        " d = 64, each). NaN: the representations were not finite.",
        "",
    ]
    parts += [summary(RESULTS / f"collapse_runs_{name}.csv") for name in args.datasets]
    parts.append(grid_rows(RESULTS / "encoders_glyphs.csv", "triplet-supervised", "sgd"))
    args.output.write_text("\n".join(parts))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
