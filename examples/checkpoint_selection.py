"""The checkpoint-selection report of the within-run study (issue #17): which epoch a monitor keeps, and its cost.

For every run of ``within_run_<dataset>.csv`` (one row per checkpoint), each selector picks one trained epoch
as ``ModelCheckpoint(mode="max", save_top_k=1)`` would (:func:`_within.select_epoch`: epochs 1.., a strict
improvement replaces the kept one, so of ties the earliest wins):

* ``k-NN n=<n> k=<k>``: ``monitor="rmqm/knn_accuracy"`` on a labelled probe of ``n`` held-out inputs
  (column ``probe_knn_n<n>_k<k>``), the callback's leave-one-out k-NN accuracy of the clean representations;
* ``max-RMQM``: ``monitor="rmqm/noise/RMQM"``; ``last``: the last checkpoint; ``best epoch``: the epoch with
  the highest downstream accuracy (known only with the downstream labels: the ceiling).

Every number is computed from the CSV's rows; nothing is read back from an earlier report. ``within_run_study.py``
writes the report after its runs; this script writes it again from saved CSVs, beside each, and given more than one,
``checkpoint_selection_summary.md`` beside the first (every data set in one table, and k compared across them)::

    python examples/checkpoint_selection.py examples/results/within_run_*.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules

import numpy as np
from _stats import spearman
from _within import select_epoch
from _within_report import Row, _signed, _table, column, group_runs

PROBE_COLUMN = "probe_knn_n{n}_k{k}"


def knn_selectors(rows: Sequence[Row]) -> dict[str, str]:
    """``k-NN n=<n> k=<k>`` -> column, for every probe size the rows have values for (a smaller probe has NaN)."""
    selectors = {}
    for name in rows[0]:
        if name.startswith("probe_knn_n") and all(math.isfinite(float(row[name])) for row in rows):
            n, k = name.removeprefix("probe_knn_n").split("_k")
            selectors[f"k-NN n={n} k={k}"] = name
    return selectors


def kept_epochs(run: Sequence[Row], selectors: Mapping[str, str]) -> dict[str, int]:
    """The epoch each selector keeps in one run (rows sorted by epoch)."""
    epochs = [int(row["epoch"]) for row in run]
    kept = {
        "best epoch": select_epoch(epochs, column(run, "knn_accuracy"), "max"),
        "last": epochs[-1],
        "max-RMQM": select_epoch(epochs, column(run, "RMQM"), "max"),
    }
    kept.update({label: select_epoch(epochs, column(run, name), "max") for label, name in selectors.items()})
    return kept


def selection_rows(runs: Mapping[tuple, Sequence[Row]], selectors: Mapping[str, str]) -> list[dict[str, object]]:
    """Per set-up and selector: the epochs kept and the downstream accuracy they give (or give up)."""
    table = []
    for setup in dict.fromkeys(key[0] for key in runs):
        mine = [sorted(rows, key=lambda row: int(row["epoch"])) for key, rows in runs.items() if key[0] == setup]
        accuracy = [{int(row["epoch"]): float(row["knn_accuracy"]) for row in run} for run in mine]
        kept = [kept_epochs(run, selectors) for run in mine]
        for label in kept[0]:
            got = np.array([acc[k[label]] for acc, k in zip(accuracy, kept)])
            best = np.array([acc[k["best epoch"]] for acc, k in zip(accuracy, kept)])
            last = np.array([acc[k["last"]] for acc, k in zip(accuracy, kept)])
            rmqm = np.array([acc[k["max-RMQM"]] for acc, k in zip(accuracy, kept)])
            table.append({
                "setup": setup,
                "selector": label,
                "epochs": [k[label] for k in kept],
                "accuracy": float(got.mean()),
                "vs_best": float((best - got).mean()),
                "worst_vs_best": float((best - got).max()),
                "vs_last": float((got - last).mean()),
                "vs_rmqm": float((got - rmqm).mean()),
                "not_worse_than_last": int((got >= last).sum()),
                "runs": len(mine),
            })  # fmt: skip
    return table


def tracking_table(runs: Mapping[tuple, Sequence[Row]], selectors: Mapping[str, str]) -> str:
    """Per set-up and probe: how closely the probe's k-NN accuracy follows downstream accuracy over a run's epochs."""
    lines = []
    for setup in dict.fromkeys(key[0] for key in runs):
        mine = [rows for key, rows in runs.items() if key[0] == setup]
        for label, name in selectors.items():
            rho = [spearman(column(rows, name), column(rows, "knn_accuracy")) for rows in mine]
            gap = [float(np.mean(column(rows, name) - column(rows, "knn_accuracy"))) for rows in mine]
            lines.append([setup, label, _signed(float(np.median(rho))), f"{np.mean(gap):+.3f}"])
    return _table(["set-up", "probe", "median rho", "mean gap"], lines, 2)


def k_lines(table: Sequence[Mapping[str, object]]) -> list[str]:
    """Mean accuracy given up against the best epoch for each k, over every set-up and probe size."""
    pairs = sum(str(entry["selector"]).endswith(" k=1") for entry in table)
    return [
        f"- k = {k}: mean given up {value:.4f} over {pairs} (set-up, probe size) pairs"
        for k, value in mean_given_up_by_k(table).items()
    ]


def mean_given_up_by_k(table: Sequence[Mapping[str, object]]) -> dict[int, float]:
    """k -> mean accuracy given up against the best epoch, over every set-up and probe size of ``table``."""
    by_k: dict[int, list[float]] = {}
    for entry in table:
        label = str(entry["selector"])
        if label.startswith("k-NN"):
            by_k.setdefault(int(label.split(" k=")[1]), []).append(float(entry["vs_best"]))
    return {k: float(np.mean(values)) for k, values in sorted(by_k.items())}


#: The selectors of the summary's table: the three references and the callback's default k on each probe size.
SUMMARY_SELECTORS = ("last", "max-RMQM", "k-NN n=64 k=1", "k-NN n=256 k=1", "k-NN n=512 k=1")


def summary_markdown(tables: Mapping[str, Sequence[Mapping[str, object]]]) -> str:
    """Every data set's selection in one table, and the k comparison across data sets (from their tables)."""
    header = ["data set", "set-up", "runs", *(f"{label}: given up (worst)" for label in SUMMARY_SELECTORS)]
    lines = []
    for dataset, table in tables.items():
        for setup in dict.fromkeys(str(entry["setup"]) for entry in table):
            mine = {str(e["selector"]): e for e in table if e["setup"] == setup}
            cells = [dataset, setup, str(next(iter(mine.values()))["runs"])]
            for label in SUMMARY_SELECTORS:
                e = mine.get(label)
                cells.append("-" if e is None else f"{e['vs_best']:.3f} ({e['worst_vs_best']:.3f})")
            lines.append(cells)
    by_k = {dataset: mean_given_up_by_k(table) for dataset, table in tables.items()}
    ks = sorted(set().union(*by_k.values()))
    k_lines = []
    for k in ks:
        per_dataset = [by_k[d][k] for d in tables if k in by_k[d]]
        cells = (f"{by_k[d][k]:.4f}" if k in by_k[d] else "-" for d in tables)
        k_lines.append([f"k = {k}", *cells, f"{np.mean(per_dataset):.4f}"])
    return f"""# Choosing a checkpoint inside one run: every data set

From `checkpoint_selection.py` over {", ".join(f"`within_run_{d}.csv`" for d in tables)} (each data set's own report
has every selector and the set-up). "given up": the best epoch's downstream accuracy minus the kept checkpoint's, mean
over the runs (worst run in brackets); `-`: the data set's probe was smaller than that.

{_table(header, lines, 3)}
## Which k: mean accuracy given up against the best epoch, over set-ups and probe sizes

{_table(["k", *tables, "mean of the data sets"], k_lines, 1)}"""


def selection_table(table: Sequence[Mapping[str, object]]) -> str:
    """The per set-up, per selector table."""
    header = [
        "set-up", "selector", "epochs kept", "mean acc", "mean given up vs best", "worst given up",
        "mean vs last", "not worse than last", "mean vs max-RMQM",
    ]  # fmt: skip
    lines = [
        [
            str(e["setup"]),
            str(e["selector"]),
            ", ".join(map(str, e["epochs"])),
            f"{e['accuracy']:.3f}",
            f"{e['vs_best']:.3f}",
            f"{e['worst_vs_best']:.3f}",
            f"{e['vs_last']:+.3f}",
            f"{e['not_worse_than_last']} of {e['runs']}",
            f"{e['vs_rmqm']:+.3f}",
        ]
        for e in table
    ]
    return _table(header, lines, 3)


def write_selection_markdown(rows: Sequence[Row], dataset: str, path: Path) -> str:
    """Write ``checkpoint_selection_<dataset>.md`` from the within-run study's rows and return its text."""
    runs = group_runs(rows)
    selectors = knn_selectors(rows)
    table = selection_rows(runs, selectors)
    sizes = sorted({int(label.split("n=")[1].split()[0]) for label in selectors})
    text = f"""# Choosing a checkpoint inside one run ({dataset})

From `within_run_{dataset}.csv` ({len(runs)} runs; see `within_run_{dataset}.md` for the set-up). Each selector keeps
one trained epoch as `ModelCheckpoint(mode="max", save_top_k=1)` would: of ties the earliest. `k-NN n=.. k=..` is
`monitor="rmqm/knn_accuracy"` with a labelled probe of the first n held-out inputs ({", ".join(map(str, sizes))}; the
smaller probes nested in the larger), the callback's leave-one-out k-NN accuracy; `max-RMQM` is
`monitor="rmqm/noise/RMQM"`; `best epoch` is the epoch with the highest downstream 1-NN accuracy (the ceiling, which
needs the downstream labels). "given up vs best": the best epoch's downstream accuracy minus the kept one's; "vs last"
and "vs max-RMQM": the kept one's minus theirs (positive: better). In `transfer` the probe holds the seen classes and
downstream accuracy is on the unseen ones; in `all-..` both are of every class.

## Downstream accuracy of the kept checkpoint

{selection_table(table)}
## Does the probe's k-NN accuracy follow downstream accuracy?

Spearman over each run's checkpoints (0 included) of the probe's k-NN accuracy with downstream accuracy (median over
runs), and the mean of probe minus downstream accuracy (the gap between what the probe sees and what is wanted).

{tracking_table(runs, selectors)}
## Which k

{chr(10).join(k_lines(table))}
"""
    path.write_text(text)
    return text


def report_path(csv_path: Path) -> Path:
    """``.../within_run_<dataset>.csv`` -> ``.../checkpoint_selection_<dataset>.md``."""
    return csv_path.with_name(csv_path.stem.replace("within_run_", "checkpoint_selection_", 1) + ".md")


def main(argv: list[str] | None = None) -> None:
    """Write ``checkpoint_selection_<dataset>.md`` beside every ``within_run_<dataset>.csv`` given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="+", type=Path, help="within_run_<dataset>.csv files of within_run_study.py")
    paths = parser.parse_args(argv).csv
    tables = {}
    for path in paths:
        if not path.stem.startswith("within_run_"):
            parser.error(f"expected a within_run_<dataset>.csv of within_run_study.py, got {path}")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not knn_selectors(rows):
            parser.error(f"{path} has no probe_knn_n<n>_k<k> columns: rerun within_run_study.py to record them")
        out = report_path(path)
        dataset = path.stem.removeprefix("within_run_")
        write_selection_markdown(rows, dataset, out)
        tables[dataset] = selection_rows(group_runs(rows), knn_selectors(rows))
        print(f"Wrote {out}")
    if len(tables) > 1:
        summary = paths[0].with_name("checkpoint_selection_summary.md")
        summary.write_text(summary_markdown(tables))
        print(f"Wrote {summary}")


if __name__ == "__main__":
    main()
