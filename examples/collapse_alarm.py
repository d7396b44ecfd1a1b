"""A collapse alarm from Lightning's own ``EarlyStopping``: proposal, simulation on recorded runs, real test fits.

The alarm is a few ``EarlyStopping`` callbacks that never stop for lack of improvement (``patience`` larger
than any run) and fire only on an absolute threshold (``divergence_threshold``) or a NaN/inf
(``check_finite``), each on one key that the RMQM callback logs at every evaluation from the probe it
embeds anyway (see :data:`KEYS`; the names are proposals):

* ``rankme``: RankMe of the clean probe representations, ``mode="max"``, stops below
  :func:`rankme_threshold_for` (a dimensional collapse; 3 for d = 64) and on NaN (non-finite representations);
* ``non_finite_share``: share of probes with a non-finite representation anywhere on the noise
  trajectory, ``mode="min"``, stops above 0 (diverged weights);
* ``D_RC_left_out_share`` / ``P_RC_left_out_share``: share of probes left out of D_RC / P_RC (their
  representation did not move between levels: a constant, dead encoder), ``mode="min"``, stops above
  :data:`LEFT_OUT_THRESHOLD`.

Modes::

    python examples/collapse_alarm.py simulate examples/results/collapse_runs.csv   # replay the rule per run
    python examples/collapse_alarm.py fit                                            # the automated-test set-up

``simulate`` feeds every run's recorded evaluations (``collapse_explore.py``'s CSV: epochs 1, 2, ...) to
real ``EarlyStopping`` objects (their ``_evaluate_stopping_criteria``, the rule Lightning applies), for the
full setting (256 probes) and the small one (the first 64 probes, 10 levels), and prints per run the
evaluation at which the alarm fires, the margins of the healthy runs and, for collapsing runs, the
timing against the collapse and against the drop of 1-NN accuracy.

``fit`` trains the smallest configuration meant for an automated test (2 epochs, 64 probes, 10 noise
levels) with ``RMQMCallback``, a stand-in :class:`AlarmKeys` that logs the alarm's keys (the callback does
not log them yet) and the alarm, and reports per fit whether and when it stopped, and its wall time.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _digits*, collapse_explore
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _digits import embed, quiet_lightning
from collapse_explore import load_data, make_model, rmqm_like_callback, safe_score
from pytorch_lightning.callbacks import Callback, EarlyStopping
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.functional.spectral import alpha_req, rankme

#: Proposed logged keys (prefix "rmqm", alteration "noise").
KEYS = {
    "rankme": "rmqm/rankme",
    "alpha_req": "rmqm/alpha_req",
    "non_finite_share": "rmqm/noise/non_finite_share",
    "D_RC_left_out_share": "rmqm/noise/D_RC_left_out_share",
    "P_RC_left_out_share": "rmqm/noise/P_RC_left_out_share",
}
#: RankMe below this is a collapse when ``min(N, d) >= 64`` (N probes, d features): healthy digits runs stay
#: above 4.4 (lowest: triplet-supervised after its first epoch), collapsed or diverged ones fall to 1.3-1.9.
RANKME_THRESHOLD = 3.0
#: The threshold for smaller ``min(N, d)`` (measured at d = 16 only: healthy runs stay above 2.69).
RANKME_THRESHOLD_SMALL = 2.0
#: More than this share of probes left out of a spike component: the encoder ignores its input.
LEFT_OUT_THRESHOLD = 0.5
#: Larger than any run: these EarlyStoppings must never stop for lack of improvement.
NEVER = 10**9


def rankme_threshold_for(num_probes: int, embedding_dim: int) -> float:
    """The RankMe threshold for a probe of ``num_probes`` and representations of size ``embedding_dim``.

    RankMe lies in ``[1, min(N, d)]``, but a collapsed encoder's RankMe (1.3-1.9 here) does not grow with d,
    while the lowest healthy RankMe does (2.7 at d = 16, 4.4 at d = 64, 7.3 at d = 128 with 64 probes).
    """
    return RANKME_THRESHOLD if min(num_probes, embedding_dim) >= 64 else RANKME_THRESHOLD_SMALL


def collapse_alarm(
    rankme_threshold: float = RANKME_THRESHOLD, left_out_threshold: float = LEFT_OUT_THRESHOLD
) -> list[EarlyStopping]:
    """The alarm: one ``EarlyStopping`` per key, firing on a threshold or a NaN/inf only, never on patience."""
    common = {"patience": NEVER, "check_finite": True, "verbose": False}
    return [
        EarlyStopping(KEYS["rankme"], mode="max", divergence_threshold=rankme_threshold, **common),
        EarlyStopping(KEYS["non_finite_share"], mode="min", divergence_threshold=0.0, **common),
        EarlyStopping(KEYS["D_RC_left_out_share"], mode="min", divergence_threshold=left_out_threshold, **common),
        EarlyStopping(KEYS["P_RC_left_out_share"], mode="min", divergence_threshold=left_out_threshold, **common),
    ]


# ---------------------------------------------------------------- simulate on recorded runs

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


def simulate(path: Path, rankme_threshold: float | None, left_out_threshold: float, small_evals: int) -> str:
    """Markdown report of the alarm replayed on every run of ``path``."""
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
    lines = [
        f"Alarm: RankMe < T = {rule} or NaN; non-finite share > 0; D_RC or P_RC left-out share >"
        f" {left_out_threshold} (or NaN). Settings: L100 = 256 probes x 100 levels, L20 = 256 x 20, small = the"
        f" first 64 probes x 10 levels (over its first {small_evals} evaluations, and over all 30). Onset A:"
        " first epoch with RankMe (256 probes) below the lowest RankMe any healthy run of the same d showed;"
        " onset B: below 1/4 of its own initial RankMe. 1-NN drop: first epoch below 0.9 x best so far.",
        "",
        f"| run | group | T (256 / 64) | fired L100 | fired L20 | fired small ({small_evals}) | fired small (30) |"
        " min RankMe (epoch) | onset A | onset B | 1-NN drop | 1-NN best -> last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in runs.items():
        dim = int(rows[0]["dim"])
        cells = []
        for setting, max_eval in (("L100", 10**6), ("L20", 10**6), ("small", small_evals), ("small", 10**6)):
            alarm = collapse_alarm(threshold(setting, dim), left_out_threshold)
            epoch, why = fire(rows, setting, alarm, max_eval)
            cells.append(f"{epoch} ({why})" if epoch else "never")
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
    lines += ["", margins(runs, threshold, small_evals)]
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


# ---------------------------------------------------------------- real fits in the test configuration


class AlarmKeys(Callback):
    """Stand-in for the keys the RMQM callback will log: RankMe, alpha-ReQ, non-finite and left-out shares.

    Logs at the end of validation (like ``RMQMCallback``), so ``EarlyStopping`` sees them when it checks at
    the end of the training epoch. It re-embeds the probe itself; the callback will not need to.
    """

    def __init__(self, probe: torch.Tensor, levels: int) -> None:
        self.probe, self.levels = probe, levels
        self.rankmes: list[float] = []  # one per evaluation, for the report

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        z = embed(pl_module, self.probe)
        shares = rmqm_like_callback(pl_module, self.probe, self.levels)
        values = {
            "rankme": safe_score(rankme, z),
            "alpha_req": safe_score(alpha_req, z),
            "non_finite_share": shares["nonfinite_share"],
            "D_RC_left_out_share": shares["D_RC_left_out_share"],
            "P_RC_left_out_share": shares["P_RC_left_out_share"],
        }
        self.rankmes.append(values["rankme"])
        for name, value in values.items():
            pl_module.log(KEYS[name], torch.tensor(value, dtype=torch.float32), on_epoch=True)


#: (group, method, optimizer, lr) of every fit of the test set-up, healthy ones first.
TEST_FITS = (
    *(("healthy", method, "adam", 1e-3) for method in ("cross-entropy", "nt-xent", "triplet-supervised")),
    ("collapse", "simsiam-no-stopgrad", "adam", 1e-2),
    ("divergence", "cross-entropy", "sgd", 1.0),
    ("divergence", "nt-xent", "adam", 10.0),
)


def alarm_fit(
    run: dict[str, Any], epochs: int, probe_size: int, levels: int, thresholds: tuple[float, float]
) -> dict[str, Any]:
    """One real fit with RMQMCallback, the stand-in keys and the alarm; when it stopped and how long it took."""
    start = time.perf_counter()
    pl.seed_everything(run["seed"], verbose=False)
    data = load_data(run["seed"], probe_size)
    train = DataLoader(TensorDataset(data["train_x"], data["train_y"]), batch_size=128, shuffle=True)
    val = DataLoader(TensorDataset(data["val_x"], data["val_y"]), batch_size=512)
    alarm = collapse_alarm(*thresholds)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=len(train),
        callbacks=[
            RMQMCallback(data["probe_x"], GaussianNoise(levels=levels), log_curves=False),
            keys := AlarmKeys(data["probe_x"], levels),
            *alarm,
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(make_model(run), train, val)
    fired = [stopper for stopper in alarm if stopper.stopping_reason != EarlyStoppingReason.NOT_STOPPED]
    return {
        **run,
        "stopped": bool(trainer.should_stop and fired),
        "evaluations": trainer.current_epoch,  # epochs completed: the stopping evaluation is the last
        "by": ", ".join(stopper.monitor.rsplit("/", 1)[-1] for stopper in fired),
        "rankmes": keys.rankmes,
        "seconds": time.perf_counter() - start,
    }


def fit_report(
    epochs: int,
    probe_size: int,
    levels: int,
    thresholds: tuple[float, float],
    seeds: tuple[int, ...] = (0, 1),
    failing_seeds: tuple[int, ...] = (0,),
) -> str:
    """Run :data:`TEST_FITS` one after the other (one torch thread) and tabulate them."""
    torch.set_num_threads(1)
    quiet_lightning()
    lines = [
        f"Test set-up: {epochs} epochs, {probe_size} probes, {levels} noise levels, RankMe threshold"
        f" {thresholds[0]:g}, 1 torch thread, one fit after the other.",
        "",
        "| fit | stopped | evaluations | by | RankMe per evaluation | seconds |",
        "|---|---|---|---|---|---|",
    ]
    total, count = 0.0, 0
    for group, method, optimizer, lr in TEST_FITS:
        for seed in seeds if group == "healthy" else failing_seeds:
            run = {"run": f"{method}/{optimizer}-{lr:g}/s{seed}", "group": group, "method": method,
                   "optimizer": optimizer, "lr": lr, "seed": seed, "dim": 64}  # fmt: skip
            out = alarm_fit(run, epochs, probe_size, levels, thresholds)
            total, count = total + out["seconds"], count + 1
            lines.append(
                f"| {run['run']} ({group}) | {out['stopped']} | {out['evaluations']} | {out['by'] or '-'} |"
                f" {', '.join(f'{value:.2f}' for value in out['rankmes'])} | {out['seconds']:.1f} |"
            )
            print(lines[-1], flush=True)
    lines.append(f"\nTotal {total:.1f} s for {count} fits.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``simulate CSV`` or ``fit``; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sim = sub.add_parser("simulate", help="replay the alarm on collapse_explore.py's CSV")
    sim.add_argument("csv", type=Path)
    sim.add_argument("--small-evals", type=int, default=2, help="evaluations of the small (test) setting")
    fit = sub.add_parser("fit", help="real fits of the automated-test configuration")
    fit.add_argument("--epochs", type=int, default=2)
    fit.add_argument("--probe-size", type=int, default=64)
    fit.add_argument("--levels", type=int, default=10)
    fit.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the healthy fits")
    fit.add_argument("--failing-seeds", type=int, nargs="+", default=[0], help="seeds of the other fits")
    for each in (sim, fit):
        each.add_argument("--output", type=Path, default=None, help="also write the markdown report here")
        each.add_argument("--rankme-threshold", type=float, default=None, help="default: rankme_threshold_for(N, d)")
        each.add_argument("--left-out-threshold", type=float, default=LEFT_OUT_THRESHOLD)
    args = parser.parse_args(argv)
    if args.mode == "simulate":
        text = simulate(args.csv, args.rankme_threshold, args.left_out_threshold, args.small_evals)
    else:
        rankme_threshold = args.rankme_threshold or rankme_threshold_for(args.probe_size, 64)
        thresholds = (rankme_threshold, args.left_out_threshold)
        text = fit_report(
            args.epochs, args.probe_size, args.levels, thresholds, tuple(args.seeds), tuple(args.failing_seeds)
        )
    if args.output is not None:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
