"""Replay the collapse alarm on the runs ``collapse_explore.py`` recorded (its CSV): when would it have fired?

Every run's recorded evaluations (epochs 1, 2, ...) go through real ``EarlyStopping`` objects (their
``_evaluate_stopping_criteria``: the rule Lightning applies) for the full setting (256 probes, 100 or
20 levels) and the small one (the first 64 probes, 10 levels), and the report gives per run the
evaluation at which the alarm fires, the margins of the healthy runs and, for collapsing runs, the
timing against the collapse and against the drop of 1-NN accuracy. Run it through
``collapse_alarm.py simulate``.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

import torch
from _collapse_recipe import KEYS, RANKME_THRESHOLD, RANKME_THRESHOLD_SMALL, collapse_alarm, rankme_threshold_for
from pytorch_lightning.callbacks import EarlyStopping

#: Setting of ``collapse_explore.py`` -> number of probes its RankMe is measured on.
PROBES = {"L100": 256, "L20": 256, "small": 64}


def _columns(setting: str) -> dict[str, str]:
    """CSV column of each alarm key for a setting of ``collapse_explore.py`` (``L100``, ``L20``, ``small``)."""
    suffix = "_small" if setting == "small" else ""
    return {
        KEYS["rankme"]: f"rankme{suffix}",
        KEYS["alpha_req"]: f"alpha_req{suffix}",
        KEYS["non_finite_share"]: f"{setting}_nonfinite_share",
        KEYS["D_RC_left_out_share"]: f"{setting}_D_RC_left_out_share",
        KEYS["P_RC_left_out_share"]: f"{setting}_P_RC_left_out_share",
    }


def fire(rows: list[dict[str, Any]], setting: str, alarm: list[EarlyStopping], max_eval: int) -> tuple[int, str]:
    """Evaluation (1-based epoch) at which the alarm first stops, and every key that stops it; ``(0, "")``: never."""
    columns = _columns(setting)
    for row in rows:
        epoch = int(row["epoch"])
        if epoch == 0:
            continue  # the callback does not evaluate before training
        if epoch > max_eval:
            break
        reasons = []
        for stopper in alarm:
            value = torch.tensor(float(row[columns[stopper.monitor]]), dtype=torch.float64)
            should_stop, _ = stopper._evaluate_stopping_criteria(value)
            if should_stop:
                reasons.append(f"{stopper.monitor.rsplit('/', 1)[-1].replace('_share', '')}={float(value):.3g}")
        if reasons:
            return epoch, ", ".join(reasons)
    return 0, ""


def accuracy_drop(rows: list[dict[str, Any]], fraction: float = 0.9) -> int | None:
    """First epoch whose 1-NN accuracy is NaN or below ``fraction`` x the best so far (init included)."""
    best = -math.inf
    for row in rows:
        acc = float(row["knn_accuracy"])
        if math.isnan(acc) or acc < fraction * best:
            return int(row["epoch"])
        best = max(best, acc)
    return None


def _first(rows: list[dict[str, Any]], column: str, below: float) -> int | None:
    """First trained epoch whose ``column`` is NaN or below ``below``."""
    return next((int(row["epoch"]) for row in rows[1:] if not float(row[column]) >= below), None)


def _fmt(value: int | None) -> str:
    return "never" if value in (None, 0) else str(value)


def _is_healthy(row: dict[str, Any]) -> bool:
    return row["group"] == "healthy" or (row["group"] == "dims" and not row["method"].startswith("simsiam"))


def simulate(
    path: Path, rankme_threshold: float | None, left_out_threshold: float, small_evals: int, watch_rankme: bool = True
) -> str:
    """Markdown report of the alarm replayed on every run of ``path`` (``watch_rankme=False``: package default)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            runs.setdefault(row["run"], []).append(row)

    def threshold(setting: str, dim: int) -> float:
        return rankme_threshold_for(PROBES[setting], dim) if rankme_threshold is None else rankme_threshold

    healthy_min = {}  # (dim, RankMe column) -> lowest RankMe of a healthy run at any evaluation
    for rows in runs.values():
        if _is_healthy(rows[0]):
            for column in ("rankme", "rankme_small"):
                key = (int(rows[0]["dim"]), column)
                healthy_min[key] = min([healthy_min.get(key, math.inf)] + [float(r[column]) for r in rows[1:]])
    rule = (
        f"{RANKME_THRESHOLD:g} (min(N, d) >= 64) or {RANKME_THRESHOLD_SMALL:g} (smaller)"
        if rankme_threshold is None
        else f"{rankme_threshold:g}"
    )
    rankme_rule = f"RankMe < T = {rule} or NaN" if watch_rankme else "RankMe not watched (T below: for reference)"
    lines = [
        f"Alarm: {rankme_rule}; non-finite share > 0; D_RC or P_RC left-out share >"
        f" {left_out_threshold} (or NaN). Settings: L100 = 256 probes x 100 levels, L20 = 256 x 20, small = the"
        f" first 64 probes x 10 levels (over its first {small_evals} evaluations, and over all 30). Onset A:"
        " first epoch with RankMe (256 probes) below the lowest RankMe any healthy run of the same d showed;"
        " onset B: below 1/4 of its own initial RankMe. 1-NN drop: first epoch below 0.9 x best so far.",
        "",
        f"| run | group | T (256 / 64) | fired L100 | fired L20 | fired small ({small_evals}) | fired small (30) |"
        " min RankMe (epoch) | onset A | onset B | 1-NN drop | 1-NN best -> last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, list[tuple[int, int | None]]] = {}  # group -> (fired L100, onset A) per run
    for name, rows in runs.items():
        dim = int(rows[0]["dim"])
        cells = []
        for setting, max_eval in (("L100", 10**6), ("L20", 10**6), ("small", small_evals), ("small", 10**6)):
            alarm = collapse_alarm(threshold(setting, dim) if watch_rankme else None, left_out_threshold)
            epoch, why = fire(rows, setting, alarm, max_eval)
            cells.append(f"{epoch} ({why})" if epoch else "never")
            if len(cells) == 1:
                group = "healthy" if _is_healthy(rows[0]) else rows[0]["group"]
                onset = _first(rows, "rankme", healthy_min[(dim, "rankme")])
                summary.setdefault(group, []).append((epoch, onset))
        rank = [(float(row["rankme"]), int(row["epoch"])) for row in rows[1:] if not math.isnan(float(row["rankme"]))]
        min_rank = f"{min(rank)[0]:.2f} ({min(rank)[1]})" if rank else "NaN (1)"
        onset_a = _first(rows, "rankme", healthy_min[(dim, "rankme")])
        onset_b = _first(rows, "rankme", float(rows[0]["rankme"]) / 4)
        accs = [float(row["knn_accuracy"]) for row in rows]
        lines.append(
            f"| {name} | {rows[0]['group']} | {threshold('L100', dim):g} / {threshold('small', dim):g} |"
            f" {' | '.join(cells)} | {min_rank} | {_fmt(onset_a)} | {_fmt(onset_b)} | {_fmt(accuracy_drop(rows))} |"
            f" {max(accs):.3f} -> {accs[-1]:.3f} |"
        )
    lines += ["", summarise(summary), margins(runs, threshold, small_evals), last_rmqm(runs)]
    return "\n".join(lines) + "\n"


def summarise(summary: dict[str, list[tuple[int, int | None]]]) -> str:
    """Markdown table: per group of runs (L100), how many the alarm stopped and how long after onset A."""
    lines = [
        f"Summary over {sum(map(len, summary.values()))} runs (L100: 256 probes x 100 levels): runs the alarm stopped,"
        " and for those with an onset, evaluations from onset A to the alarm.",
        "",
        "| group | runs | stopped | fired at | evaluations after onset A |",
        "|---|---:|---:|---|---|",
    ]
    for group, runs in summary.items():
        fired = [epoch for epoch, _ in runs if epoch]
        delays = sorted(epoch - onset for epoch, onset in runs if epoch and onset is not None)
        lines.append(
            f"| {group} | {len(runs)} | {len(fired)} | {', '.join(map(str, sorted(fired))) or '-'} |"
            f" {', '.join(map(str, delays)) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def last_rmqm(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown table: RMQM (256 probes x 100 levels) at each d = 64 run's last evaluation, by group.

    Where RMQM ranks a collapsed run against healthy ones of the same length and size.
    """
    lines = [
        "RMQM (L100) at the last evaluation of each d = 64 run, by group: would ModelCheckpoint or a sweep on RMQM"
        " prefer the collapsed runs?",
        "",
        "| group | runs | min | median | max |",
        "|---|---:|---:|---:|---:|",
    ]
    groups: dict[str, list[float]] = {}
    for rows in runs.values():
        first = rows[0]
        if int(first["dim"]) == 64 and first["group"] != "dims":
            label = f"{first['group']} ({first['method']}, {first['optimizer']} {first['lr']})"
            if first["group"] == "healthy":
                label = "healthy"
            groups.setdefault(label, []).append(float(rows[-1]["L100_RMQM"]))
    for label, values in groups.items():
        values = sorted(value for value in values if not math.isnan(value))
        if values:
            middle = statistics.median(values)
            lines.append(f"| {label} | {len(values)} | {values[0]:.2f} | {middle:.2f} | {values[-1]:.2f} |")
    return "\n".join(lines) + "\n"


def margins(runs: dict[str, list[dict[str, Any]]], threshold: Any, small_evals: int) -> str:
    """Markdown table: per embedding size and setting, the healthy runs' extremes of every candidate key."""
    lines = [
        "Healthy runs (every evaluation after training started): lowest RankMe against T, highest left-out and"
        " non-finite shares, and the range of the keys not used (D, alpha-ReQ, RMQM).",
        "",
        "| d | setting | runs | min RankMe | T | min / T | max left-out | max non-finite | min D | alpha-ReQ | RMQM |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dim in sorted({int(rows[0]["dim"]) for rows in runs.values()}):
        mine = [rows for rows in runs.values() if _is_healthy(rows[0]) and int(rows[0]["dim"]) == dim]
        for setting, evals in (("L100", 10**6), ("L20", 10**6), ("small", small_evals), ("small", 10**6)):
            rows = [row for run in mine for row in run[1 : evals + 1]]
            rank_col = "rankme_small" if setting == "small" else "rankme"
            alpha_col = "alpha_req_small" if setting == "small" else "alpha_req"
            low = min(float(row[rank_col]) for row in rows)
            left = max(
                max(float(row[f"{setting}_D_RC_left_out_share"]), float(row[f"{setting}_P_RC_left_out_share"]))
                for row in rows
            )
            alphas = [float(row[alpha_col]) for row in rows]
            rmqm = [float(row[f"{setting}_RMQM"]) for row in rows]
            label = setting if evals > 30 else f"{setting} (first {evals})"
            lines.append(
                f"| {dim} | {label} | {len(mine)} | {low:.2f} | {threshold(setting, dim):g} |"
                f" {low / threshold(setting, dim):.2f} | {left:.3f} |"
                f" {max(float(row[f'{setting}_nonfinite_share']) for row in rows):.3f} |"
                f" {min(float(row[f'{setting}_D']) for row in rows):.3f} | {min(alphas):.2f}-{max(alphas):.2f} |"
                f" {min(rmqm):.2f}-{max(rmqm):.2f} |"
            )
    return "\n".join(lines) + "\n"
