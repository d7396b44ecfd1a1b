"""The within-run study's report: the Markdown tables and summary, and the score/accuracy-vs-epoch figure.

Every number here is computed from the rows (one per checkpoint) that ``within_run_study.py`` writes
to its CSV; nothing is read back from an earlier run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from _data import get_dataset
from _stats import pearson, spearman
from _within import predicted_p_rc, run_statistics

Row = Mapping[str, object]
#: Score label in the report -> CSV column.
SCORES = {
    "RMQM": "RMQM",
    "D": "D",
    "D_RC": "D_RC",
    "P_RC": "P_RC",
    "RankMe": "rankme",
    "alpha-ReQ": "alpha_req",
    "Jacobian PR": "jacobian_pr",
    "repr. PR": "representation_pr",
}
MECHANISMS = {"Jacobian PR": "jacobian_pr", "repr. PR": "representation_pr"}
WHY_JACOBIAN = (
    "Why the Jacobian's participation ratio: the noise is fresh at every level, so a step between levels is,"
    " to first order, dp_j = |J (a_j - a_{j-1})| with J the Jacobian of the normalised representation and"
    " a_j isotropic Gaussian noise. Then dp_j^2 = sigma^2 sum_k s_k^2 xi_k^2 (xi_k standard normal), whose"
    " relative spread is sqrt(2 / PR), PR = (sum s_k^2)^2 / sum s_k^4: an encoder that is sensitive to fewer"
    " input directions has spikier steps, so a larger P_RC and a lower RMQM. The prediction is a negative"
    " correlation of PR with P_RC (only a first-order argument: the noise reaches std 1 and is clipped to"
    " [0, 1]). The second candidate is the same ratio over the probe's centred, normalised embeddings (how"
    " many directions the representation spreads the probe over)."
)


def group_runs(rows: Sequence[Row]) -> dict[tuple[str, str, int], list[Row]]:
    """Rows by run ``(setup, method, seed)``, in first-seen order."""
    runs: dict[tuple[str, str, int], list[Row]] = {}
    for row in rows:
        runs.setdefault((str(row["setup"]), str(row["method"]), int(row["seed"])), []).append(row)
    return runs


def column(rows: Sequence[Row], name: str) -> np.ndarray:
    """One CSV column of ``rows`` as floats."""
    return np.array([float(row[name]) for row in rows])


def _signed(value: float) -> str:
    return f"{value:+.2f}" if np.isfinite(value) else "nan"


def _table(header: Sequence[str], lines: list[list[str]], numeric_from: int) -> str:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    body = [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|"] + [f"| {' | '.join(cells)} |" for cells in lines]
    return "\n".join(body) + "\n"


def rmqm_table(runs: Mapping[tuple[str, str, int], list[Row]], stats: Mapping[tuple, dict]) -> str:
    """Per run: Spearman of RMQM with accuracy and epoch, and what keeping its max / min checkpoint costs."""
    header = ["set-up", "method", "seed", "rho(RMQM, acc)", "rho(RMQM, epoch)"]
    for mode in ("max", "min"):
        header += [f"{mode}-RMQM epoch", "acc", "given up vs best", "vs last"]
    header += ["best epoch", "best acc", "last acc", "init acc"]
    lines = []
    for key in runs:
        s, entry = stats[key], stats[key]["RMQM"]
        cells = [key[0], key[1], str(key[2]), _signed(entry["rho_accuracy"]), _signed(entry["rho_epoch"])]
        for mode in ("max", "min"):
            kept = entry[mode]
            cells += [
                str(kept["epoch"]),
                f"{kept['accuracy']:.3f}",
                f"{kept['vs_best']:.3f}",
                f"{kept['vs_last']:+.3f}",
            ]
        cells += [str(s["best_epoch"]), *(f"{s[f'{k}_accuracy']:.3f}" for k in ("best", "last", "first"))]
        lines.append(cells)
    return _table(header, lines, 3)


def score_table(runs: Mapping[tuple, list[Row]], stats: Mapping[tuple, dict], field: str) -> str:
    """Per run, the Spearman ``field`` (``rho_accuracy`` or ``rho_epoch``) of every score."""
    lines = [[*map(str, key), *(_signed(stats[key][label][field]) for label in SCORES)] for key in runs]
    return _table(["set-up", "method", "seed", *SCORES], lines, 3)


def selection_table(runs: Mapping[tuple, list[Row]], stats: Mapping[tuple, dict]) -> str:
    """Per set-up, score and mode: the epochs kept (one per run) and the mean accuracy that costs."""
    lines = []
    for setup in dict.fromkeys(key[0] for key in runs):
        mine = [stats[key] for key in runs if key[0] == setup]
        for label in SCORES:
            for mode in ("max", "min"):
                kept = [s[label][mode] for s in mine]
                lines.append(
                    [setup, label, mode, ", ".join(str(k["epoch"]) for k in kept)]
                    + [f"{np.mean([k['accuracy'] for k in kept]):.3f}"]
                    + [f"{np.mean([k[f] for k in kept]):+.3f}" for f in ("vs_best", "vs_last")]
                )
    header = ["set-up", "score", "mode", "epochs kept", "mean acc", "mean given up vs best", "mean vs last"]
    return _table(header, lines, 4)


def mechanism_table(runs: Mapping[tuple, list[Row]]) -> str:
    """Direction of P_RC and of each candidate over epochs, and each candidate's correlation with P_RC."""
    groups = {key: rows for key, rows in runs.items()}
    for setup in dict.fromkeys(key[0] for key in runs):
        groups[(setup, "pooled", "all")] = [r for key, rows in runs.items() if key[0] == setup for r in rows]
    groups[("all", "pooled", "all")] = [r for rows in runs.values() for r in rows]
    header = ["set-up", "method", "seed", "n", "rho(P_RC, epoch)"]
    for label in MECHANISMS:
        header += [f"rho({label}, epoch)", f"r({label}, P_RC)", f"rho({label}, P_RC)"]
    lines = []
    for key, rows in groups.items():
        epoch, p_rc = column(rows, "epoch"), column(rows, "P_RC")
        cells = [*map(str, key), str(len(rows)), _signed(spearman(p_rc, epoch))]
        for name in MECHANISMS.values():
            values = column(rows, name)
            cells += [_signed(spearman(values, epoch)), _signed(pearson(values, p_rc)), _signed(spearman(values, p_rc))]
        lines.append(cells)
    return _table(header, lines, 3)


def prediction_lines(runs: Mapping[tuple, list[Row]]) -> list[str]:
    """Measured P_RC against the parameter-free first-order prediction from the Jacobian PR, per set-up."""
    groups = {setup: [r for key, rows in runs.items() if key[0] == setup for r in rows] for setup, *_ in runs}
    groups["all"] = [r for rows in runs.values() for r in rows]
    lines = []
    for name, rows in groups.items():
        measured, predicted = column(rows, "P_RC"), predicted_p_rc(column(rows, "jacobian_pr"))
        ratio = measured / predicted
        lines.append(
            f"- {name} ({len(rows)} checkpoints): measured / predicted P_RC has mean {ratio.mean():.2f}"
            f" (range {ratio.min():.2f} to {ratio.max():.2f}); Pearson r of measured with predicted"
            f" {_signed(pearson(predicted, measured))}."
        )
    return lines


def summary_lines(runs: Mapping[tuple, list[Row]], stats: Mapping[tuple, dict]) -> list[str]:
    """Computed one-line findings per set-up."""
    lines = []
    for setup in dict.fromkeys(key[0] for key in runs):
        keys = [key for key in runs if key[0] == setup]
        rmqm = [stats[key]["RMQM"] for key in keys]
        falls = sum(entry["rho_epoch"] < 0 for entry in rmqm)
        init_highest = sum(int(np.argmax(column(runs[key], "RMQM"))) == 0 for key in keys)
        best = ", ".join(str(stats[key]["best_epoch"]) for key in keys)

        def kept(mode: str, rmqm: list[dict] = rmqm) -> str:
            epochs = ", ".join(str(entry[mode]["epoch"]) for entry in rmqm)
            vs_best = np.mean([entry[mode]["vs_best"] for entry in rmqm])
            vs_last = np.mean([entry[mode]["vs_last"] for entry in rmqm])
            return f'`mode="{mode}"` on RMQM keeps epochs {epochs}, giving up {vs_best:.3f} / {vs_last:+.3f}'

        lines.append(
            f"- **{setup}** ({len(keys)} runs): Spearman of RMQM with the epoch has median"
            f" {_signed(np.median([e['rho_epoch'] for e in rmqm]))} (negative in {falls} of {len(keys)} runs);"
            f" with accuracy, median {_signed(np.median([e['rho_accuracy'] for e in rmqm]))}. {kept('max')}"
            f" accuracy on average against the best epoch / the last checkpoint; {kept('min')}."
            f" The best trained epoch by accuracy is {best}; the random initialisation has the highest RMQM of all"
            f" checkpoints in {init_highest} of {len(keys)} runs."
        )
    return lines


def write_markdown(
    rows: Sequence[Row], settings: Mapping[str, object], args: Mapping[str, object], wall_seconds: float, path: Path
) -> str:
    """Write the report to ``path`` and return its text."""
    runs = group_runs(rows)
    stats = {key: run_statistics(mine, SCORES) for key, mine in runs.items()}
    epochs = settings["epochs"]
    dataset = get_dataset(str(settings["dataset"]))
    everything, items = f"all-{dataset.items}", dataset.items
    seen, unseen = dataset.describe(dataset.seen), dataset.describe(dataset.unseen)
    text = f"""# RMQM inside one training run ({dataset.name})

{len(runs)} runs: set-ups {", ".join(args["setups"])}; methods {", ".join(args["methods"])}; seeds {args["seeds"]}.
Adam (lr 1e-3), embedding size {settings["embedding_dim"]}, batch size {settings["batch_size"]}, {epochs} epochs;
checkpoints at epochs 0 (random initialisation) to {epochs}. RMQM: `rmqm_callback.score` with
`GaussianNoise(levels={settings["levels"]})`, {settings["probe_size"]} held-out probe images (transfer: {seen},
`holdout_split(seed=0)` as in correlation_study.py; {everything}: `holdout_split(val_fraction=0.15, seed=seed)` as in
train_digits.py). RankMe, alpha-ReQ and the representation PR: the probe's clean embeddings. Accuracy: 1-NN (cosine);
transfer: {unseen}, fit on one half and tested on the other; {everything}: validation {items} against the training
{items}. Spearman coefficients are over all checkpoints 0..{epochs}. `mode="max"` / `"min"` is the checkpoint
`ModelCheckpoint(save_top_k=1)` keeps: it only sees trained epochs 1..{epochs}, and of ties the earliest wins;
"given up vs best" is the best trained epoch's accuracy minus the kept one's, "vs last" the last epoch's minus the
kept one's (negative: the kept checkpoint is better than the last).

Wall time of this run: {wall_seconds:.0f} s ({wall_seconds / 60:.1f} min) with {args["workers"]} worker(s).

## Summary

{chr(10).join(summary_lines(runs, stats))}

## RMQM per run

{rmqm_table(runs, stats)}
## Spearman of every score with 1-NN accuracy, per run

{score_table(runs, stats, "rho_accuracy")}
## Spearman of every score with the epoch, per run

{score_table(runs, stats, "rho_epoch")}
## Checkpoint selection by each score

{selection_table(runs, stats)}
## Mechanism: participation ratios against P_RC

{WHY_JACOBIAN}

{mechanism_table(runs)}
First-order prediction, no fitted constant: P_RC = sqrt(2 / pi) / sqrt(Jacobian PR) (the mean absolute difference of
two independent steps, relative to a step).

{chr(10).join(prediction_lines(runs))}
"""
    path.write_text(text)
    return text


def write_plot(rows: Sequence[Row], path: Path) -> None:
    """RMQM (left axis) and 1-NN accuracy (right axis) against epoch: one panel per set-up and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = group_runs(rows)
    setups = list(dict.fromkeys(key[0] for key in runs))
    methods = list(dict.fromkeys(key[1] for key in runs))
    figure, axes = plt.subplots(
        len(setups), len(methods), figsize=(4.2 * len(methods), 3.3 * len(setups)), squeeze=False
    )
    styles = ["-", "--", ":", "-."]
    for i, setup in enumerate(setups):
        for j, method in enumerate(methods):
            left = axes[i][j]
            right = left.twinx()
            seeds = [key for key in runs if key[:2] == (setup, method)]
            for n, key in enumerate(seeds):
                mine, style = runs[key], styles[n % len(styles)]
                epoch = column(mine, "epoch")
                left.plot(epoch, column(mine, "RMQM"), color="C0", linestyle=style, label=f"RMQM, seed {key[2]}")
                right.plot(
                    epoch, column(mine, "knn_accuracy"), color="C3", linestyle=style, label=f"1-NN, seed {key[2]}"
                )
            left.set_title(f"{setup}: {method}", fontsize=10)
            left.set_xlabel("epoch (0 = random init)")
            left.set_ylabel("RMQM", color="C0")
            right.set_ylabel("1-NN accuracy", color="C3")
            if i == 0 and j == 0:
                handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
                left.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="center right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
