"""What each recorded run's collapse signals reached: one table per data set, from collapse_explore.py's CSVs.

For every run of ``examples/results/collapse_runs_<dataset>.csv`` (recorded by ``collapse_explore.py``),
over the evaluations after training began (epochs >= 1): the lowest RankMe, the lowest centred
RankMe, the lowest D (256 probes x 100 levels), the highest non-finite share, the highest mean L2
norm of the clean probe's representations (and its value before training), the lowest spread of
their L2-normalised directions (``unit_spread``) and the highest ratio of D to it (recordings made
before ``collapse_explore.py`` recorded ``unit_spread`` show "n/a"), and the probe's 1-NN accuracy at
epoch 0 and at the last epoch. NaN where the representations were not finite. These are the values
an ``EarlyStopping`` threshold on each signal would have to separate. A last table compares each
``_rerun`` recording with the first recording of the same runs, value by value. Run from the
repository root::

    python examples/collapse_summary.py --datasets mnist1d digits_centred glyphs digits_rerun mnist1d_rerun glyphs_rerun
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


#: A spread below this is zero to float64 rounding (unit vectors that all point the same way).
ZERO_SPREAD = 1e-12


def _ratio(numerator: str, denominator: str) -> float:
    """``numerator / denominator``; inf for a spread of zero (to float64 rounding); NaN where either is NaN."""
    top, bottom = _float(numerator), _float(denominator)
    if math.isnan(top) or math.isnan(bottom):
        return math.nan
    return top / bottom if bottom > ZERO_SPREAD else math.inf


def summary(path: Path) -> str:
    """The Markdown table of one CSV."""
    runs: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(path.open()):
        runs.setdefault(row["run"], []).append(row)
    lines = [
        f"## {path.name}",
        "",
        "| run | group | epochs | lowest RankMe | lowest centred RankMe | lowest D | highest non-finite share"
        " | mean norm at epoch 0 | highest mean norm | lowest unit spread | highest D / unit spread"
        " | 1-NN at epoch 0 | 1-NN at the end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
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
            _of_finite(min, [_float(row.get("unit_spread", "nan")) for row in trained]),
            _of_finite(max, [_ratio(row["L100_D"], row.get("unit_spread", "nan")) for row in trained]),
            _float(rows[0]["knn_accuracy"]),
            _float(rows[-1]["knn_accuracy"]),
        ]
        shown = ["NaN" if math.isnan(v) else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}" for v in cells]
        for column in (5, 7):  # norms span 12 orders of magnitude, and a ratio to a spread of ~0 as many
            shown[column] = "NaN" if math.isnan(cells[column]) else f"{cells[column]:.3g}"
        if "unit_spread" not in rows[0]:
            shown[6] = shown[7] = "n/a"
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


#: Columns that name a run's settings, not something measured: left out of the comparison.
SETTINGS_COLUMNS = ("run", "group", "method", "optimizer", "lr", "seed", "dim", "epoch")


def _relative_difference(first: str, again: str) -> float:
    """``|again - first| / |first|``: 0 for equal values (NaN against NaN too), inf where only one is NaN or inf."""
    a, b = _float(first), _float(again)
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(b - a) / max(abs(a), 1e-300)


def reproduction(pairs: list[tuple[str, str]]) -> str:
    """How each re-recording agrees with the first recording of the same runs: the measured values, not timings."""
    lines = [
        "## The re-recordings against the first recordings (the runs and measured columns both hold, wall times"
        " left out)",
        "",
        "| first recording | re-recording | runs in both | values equal at epoch 0 | largest relative difference"
        " at epoch 0 | values equal after epoch 0 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for first_name, again_name in pairs:
        first = {(row["run"], row["epoch"]): row for row in csv.DictReader((RESULTS / first_name).open())}
        again = {(row["run"], row["epoch"]): row for row in csv.DictReader((RESULTS / again_name).open())}
        equal, compared, worst_at_start = {True: 0, False: 0}, {True: 0, False: 0}, 0.0
        for key in first.keys() & again.keys():
            at_start = key[1] == "0"
            for column in first[key].keys() & again[key].keys():
                if column in SETTINGS_COLUMNS or column.endswith("seconds"):
                    continue
                difference = _relative_difference(first[key][column], again[key][column])
                compared[at_start] += 1
                equal[at_start] += difference == 0
                if at_start:
                    worst_at_start = max(worst_at_start, difference)
        runs = len({run for run, _ in first.keys() & again.keys()})
        lines.append(
            f"| {first_name} | {again_name} | {runs} | {equal[True]} of {compared[True]} | {worst_at_start:.2g}"
            f" | {equal[False]} of {compared[False]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[
        "mnist1d", "digits_centred", "glyphs", "digits_rerun", "mnist1d_rerun", "glyphs_rerun"
    ])  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS / "collapse_runs_summary.md")
    args = parser.parse_args()
    parts = [
        "# The collapse signals each recorded run reached (epochs >= 1)",
        "",
        "From `examples/collapse_summary.py` over `collapse_explore.py`'s recordings (10 epochs, seed 0, d = 64, each:"
        " 12 runs in the first three, the 16 runs of `--groups healthy collapse divergence --only /s0` in the"
        " `_rerun` ones, recorded on 2026-12-06, after the others). NaN: the representations were not finite.",
        "",
    ]
    parts += [summary(RESULTS / f"collapse_runs_{name}.csv") for name in args.datasets]
    parts.append(grid_rows(RESULTS / "encoders_glyphs.csv", "triplet-supervised", "sgd"))
    parts.append(reproduction([(f"collapse_runs_{first}.csv", f"collapse_runs_{again}_rerun.csv")
                               for first, again in (("digits_centred", "digits"), ("mnist1d", "mnist1d"),
                                                    ("glyphs", "glyphs"))]))  # fmt: skip
    args.output.write_text("\n".join(parts))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
