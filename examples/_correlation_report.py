"""The correlation study's outputs: the per-encoder CSV, the Markdown report and the paper's Figure 4.

Every number of the report is computed from the rows the CSV holds; nothing is read from an earlier run.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from _data import get_dataset
from _stats import correlations, markdown_table, min_max, pearson

#: Score label in the tables -> CSV column; 1/D_RC and 1/P_RC are the terms of RMQM (eq. 4).
SCORES = {
    "RMQM": "RMQM",
    "D": "D",
    "1/D_RC": "inv_D_RC",
    "1/P_RC": "inv_P_RC",
    "RMQM, scaled noise": "RMQM_scaled",
    "D, scaled noise": "D_scaled",
    "1/D_RC, scaled noise": "inv_D_RC_scaled",
    "1/P_RC, scaled noise": "inv_P_RC_scaled",
    "RankMe": "rankme",
    "RankMe, centred": "rankme_centred",
    "alpha-ReQ": "alpha_req",
    "alpha-ReQ, centred": "alpha_req_centred",
    "-abs(alpha-ReQ - 1)": "neg_alpha_req_distance",
    "-abs(alpha-ReQ - 1), centred": "neg_alpha_req_centred_distance",
}


def output_names(dataset: str) -> tuple[str, str, str]:
    """The CSV, report and figure file names of a data set's study."""
    return f"encoders_{dataset}.csv", f"correlations_{dataset}.md", f"rmqm_vs_accuracy_{dataset}.png"


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(row[key]) for row in rows], dtype=float)


def correlation_table(rows: list[dict], resamples: int) -> str:
    """Every score's Pearson and Spearman with the rows' normalised accuracy, bootstrap intervals (seed 0)."""
    target = _column(rows, "normalised_accuracy")
    scores = {label: _column(rows, column) for label, column in SCORES.items()}
    return markdown_table(correlations(scores, target, resamples, seed=0))


def within_groups_table(rows: list[dict], key: str) -> str:
    """A markdown table: Pearson r of RMQM with accuracy among the encoders sharing each value of ``key``."""
    lines = [f"| {key} | n | r |", "|---|---:|---:|"]
    for value in dict.fromkeys(row[key] for row in rows):
        mine = [row for row in rows if row[key] == value]
        r = pearson(_column(mine, "RMQM"), _column(mine, "knn_accuracy"))
        lines.append(f"| {value} | {len(mine)} | {f'{r:+.2f}' if len(mine) >= 4 else '-'} |")
    return "\n".join(lines) + "\n"


def collapse_lines(rows: list[dict], chance: float, margin: float) -> str:
    """How collapse is decided, and the collapsed encoders with their numbers."""
    collapsed = [row for row in rows if int(row["collapsed"])]
    text = (
        f"Collapse (decided before the study was run, from neither the scores nor the downstream task): 1-NN"
        f" accuracy of the probe against the training inputs (seen classes, cosine, in representation space)"
        f" below chance + {margin:g} = {chance + margin:.3f}, or non-finite clean representations."
        f" Collapsed: {len(collapsed)} of {len(rows)} encoders.\n"
    )
    for row in collapsed:
        text += (
            f"- {row['method']}, d = {row['embedding_dim']}, {row['optimizer']}, seed {row['seed']}: seen 1-NN"
            f" {float(row['seen_knn_accuracy']):.3f}, unseen 1-NN {float(row['knn_accuracy']):.3f}, D"
            f" {float(row['D']):.4f}, RMQM {float(row['RMQM']):.3f}, RankMe {float(row['rankme']):.2f}"
            f" (centred {float(row['rankme_centred']):.2f})\n"
        )
    return text


def plot_regression(rows: list[dict], title: str, path: Path) -> float:
    """The paper's Figure 4: RMQM against normalised accuracy, coloured by method, with a fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = _column(rows, "RMQM"), _column(rows, "normalised_accuracy")
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
    finite = np.isfinite(x)
    slope, intercept = np.polyfit(x[finite], y[finite], 1)
    line = np.linspace(x[finite].min(), x[finite].max(), 50)
    axes.plot(line, slope * line + intercept, color="black", linewidth=1.5, label="least-squares fit")
    axes.set_xlabel(f"RMQM (white noise, held-out {title[0]})")
    axes.set_ylabel(f"normalised 1-NN accuracy on {title[1]}")
    axes.set_title(f"RMQM vs downstream accuracy: Pearson r = {r:.2f} (n = {len(rows)})")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return r


def write_outputs(rows: list[dict], args: argparse.Namespace, context: dict[str, float]) -> tuple[str, tuple]:
    """Write the CSV, the report and the plot; return the report's text and the three file names.

    ``context``: ``raw_accuracy`` (1-NN on raw inputs), ``max_std`` (the scaled noise's) and ``mnist_std`` (the
    std it is relative to), ``train_inputs``, ``wall_seconds`` and ``margin`` (of the collapse rule).
    """
    dataset = get_dataset(args.dataset)
    names = output_names(args.dataset)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    accuracy = _column(rows, "knn_accuracy")
    for row, value in zip(rows, min_max(accuracy)):
        row["normalised_accuracy"] = float(value)
    with open(args.output_dir / names[0], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    seen, unseen = dataset.describe(dataset.seen), dataset.describe(dataset.unseen)
    healthy = [row for row in rows if not int(row["collapsed"])]
    chance = 1.0 / len(dataset.seen)
    settings = (
        f"{len(rows)} encoders: methods {', '.join(args.methods)}; embedding sizes {args.dims};"
        f" optimizers {args.optimizers}; seeds {args.seeds}; {args.epochs} epochs on {seen}"
        f" ({context['train_inputs']:,} training inputs, batch size {args.batch_size})."
        f" RMQM: white noise, {args.levels} levels, {args.probe_size} held-out probes of {seen}; paper noise: std 0"
        f" to 1; scaled noise: std 0 to {context['max_std']:.4f} (the probe's input std over MNIST's pixel std,"
        f" {context['mnist_std']}). Inputs: {dataset.title}, {dataset.scaling}."
        f" Accuracy: 1-NN on {unseen} (fit on one half, test on the other), min-max scaled over encoders"
        f" (range {accuracy.min():.3f} to {accuracy.max():.3f}; raw inputs: {context['raw_accuracy']:.3f})."
        f" Intervals: percentile bootstrap over encoders, {args.resamples} resamples, seed 0."
        " The centred spectral scores are the same functions on the clean representations minus their mean"
        " (alpha-ReQ centres them itself, so its two rows agree up to rounding)."
    )
    wall, too_few = context["wall_seconds"], "Fewer than 3 encoders.\n"
    text = (
        f"# RMQM vs downstream accuracy on {dataset.title}\n\n{settings}\n\n"
        f"Wall time of this run: {wall:.0f} s ({wall / 60:.1f} min) with {args.workers} worker(s).\n\n"
        f"{collapse_lines(rows, chance, context['margin'])}\n"
        f"## Correlation of each score with normalised accuracy, all encoders\n\n"
        f"{correlation_table(rows, args.resamples)}\n"
        f"## Correlation of each score with normalised accuracy, non-collapsed encoders\n\n"
        f"{correlation_table(healthy, args.resamples) if len(healthy) >= 3 else too_few}\n"
        "## Pearson r of RMQM with accuracy within groups of encoders (- when a group has fewer than 4)\n\n"
        f"{within_groups_table(rows, 'method')}\n{within_groups_table(rows, 'embedding_dim')}"
    )
    (args.output_dir / names[1]).write_text(text)
    plot_regression(rows, (seen, unseen), args.output_dir / names[2])
    return text, names
