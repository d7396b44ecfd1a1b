"""A collapse alarm from Lightning's own ``EarlyStopping`` on RMQMCallback's collapse signals: replay and real fits.

The alarm is :func:`rmqm_callback.collapse_alarm`; by default the digits' RankMe rule is on
(:func:`_collapse_recipe.collapse_alarm`), ``--no-rankme`` replays or fits the package's default. Modes::

    python examples/collapse_alarm.py simulate       # replay the rule on examples/results/collapse_runs_digits.csv
    python examples/collapse_alarm.py fit            # the automated-test set-up
    python examples/collapse_alarm.py fit --dataset glyphs
    python examples/collapse_alarm.py simulate --dataset mnist1d --no-rankme   # the package's default alarm

``simulate`` replays every run ``collapse_explore.py`` recorded through real ``EarlyStopping`` objects
(see ``_collapse_simulation``). ``fit`` trains the configuration of the automated test (2 epochs, 64
probes, 10 noise levels) with ``RMQMCallback`` and the alarm, and reports per fit whether and when it
stopped, the RankMe it logged, and its wall time. ``--dataset`` (default digits) picks the data set: the
fits' data and encoder, and ``simulate``'s default CSV (``collapse_runs_<dataset>.csv``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules, collapse_explore
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _collapse_recipe import KEYS, LEFT_OUT_THRESHOLD, collapse_alarm, rankme_threshold_for
from _collapse_simulation import simulate
from _data import DATASETS
from _data_cache import DEFAULT_CACHE_DIR
from _fits import quiet_lightning, quiet_trainer
from _methods import METHODS
from collapse_explore import load_data, make_model
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from rmqm_callback import GaussianNoise, RMQMCallback


class RankMes(Callback):
    """The RankMe ``RMQMCallback`` logged at each evaluation (listed after it), for the report."""

    def __init__(self) -> None:
        self.values: list[float] = []

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics[KEYS["rankme"]]))


#: (group, method, optimizer, lr) of every fit of the test set-up, healthy ones first.
TEST_FITS = (
    *(("healthy", method, "adam", 1e-3) for method in METHODS),
    ("collapse", "simsiam-no-stopgrad", "adam", 1e-2),
    ("divergence", "cross-entropy", "sgd", 1.0),
    ("divergence", "nt-xent", "adam", 10.0),
)


def alarm_fit(
    run: dict[str, Any],
    epochs: int,
    probe_size: int,
    levels: int,
    thresholds: tuple[float | None, float],
    dataset: str = "digits",
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> dict[str, Any]:
    """One real fit on ``dataset`` with RMQMCallback and the alarm: whether and when it stopped, how long it took."""
    start = time.perf_counter()
    pl.seed_everything(run["seed"], verbose=False)
    data = load_data(run["seed"], probe_size, dataset, cache_dir)
    train = DataLoader(TensorDataset(data["train_x"], data["train_y"]), batch_size=128, shuffle=True)
    val = DataLoader(TensorDataset(data["val_x"], data["val_y"]), batch_size=512)
    alarm = collapse_alarm(*thresholds)
    rankmes = RankMes()
    callback = RMQMCallback(data["probe_x"], GaussianNoise(levels=levels), log_curves=False)
    trainer = quiet_trainer(epochs, train, num_sanity_val_steps=0, callbacks=[callback, rankmes, *alarm])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(make_model(run, dataset), train, val)
    fired = [stopper for stopper in alarm if stopper.stopping_reason != EarlyStoppingReason.NOT_STOPPED]
    return {
        **run,
        "stopped": bool(trainer.should_stop and fired),
        "evaluations": trainer.current_epoch,  # epochs completed: the stopping evaluation is the last
        "by": ", ".join(stopper.monitor.rsplit("/", 1)[-1] for stopper in fired),
        "reasons": {stopper.monitor: stopper.stopping_reason for stopper in alarm},
        "rankmes": rankmes.values,
        "seconds": time.perf_counter() - start,
    }


def fit_report(
    epochs: int,
    probe_size: int,
    levels: int,
    thresholds: tuple[float | None, float],
    seeds: tuple[int, ...] = (0, 1),
    failing_seeds: tuple[int, ...] = (0,),
    dataset: str = "digits",
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> str:
    """Run :data:`TEST_FITS` on ``dataset`` one after the other (one torch thread) and tabulate them."""
    torch.set_num_threads(1)
    quiet_lightning()
    lines = [
        f"Test set-up ({dataset}): {epochs} epochs, {probe_size} probes, {levels} noise levels, RankMe threshold"
        f" {'off' if thresholds[0] is None else format(thresholds[0], 'g')}, 1 torch thread, one fit after the other.",
        "",
        "| fit | stopped | evaluations | by | RankMe per evaluation | seconds |",
        "|---|---|---|---|---|---|",
    ]
    total, count = 0.0, 0
    for group, method, optimizer, lr in TEST_FITS:
        for seed in seeds if group == "healthy" else failing_seeds:
            run = {"run": f"{method}/{optimizer}-{lr:g}/s{seed}", "group": group, "method": method,
                   "optimizer": optimizer, "lr": lr, "seed": seed, "dim": 64}  # fmt: skip
            out = alarm_fit(run, epochs, probe_size, levels, thresholds, dataset, cache_dir)
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
    sim.add_argument("csv", type=Path, nargs="?", help="default: examples/results/collapse_runs_<dataset>.csv")
    sim.add_argument("--small-evals", type=int, default=2, help="evaluations of the small (test) setting")
    fit = sub.add_parser("fit", help="real fits of the automated-test configuration")
    fit.add_argument("--epochs", type=int, default=2)
    fit.add_argument("--probe-size", type=int, default=64)
    fit.add_argument("--levels", type=int, default=10)
    fit.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the healthy fits")
    fit.add_argument("--failing-seeds", type=int, nargs="+", default=[0], help="seeds of the other fits")
    fit.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where generated data are kept")
    for each in (sim, fit):
        each.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
        each.add_argument("--output", type=Path, default=None, help="also write the markdown report here")
        each.add_argument("--rankme-threshold", type=float, default=None, help="default: rankme_threshold_for(N, d)")
        each.add_argument("--left-out-threshold", type=float, default=LEFT_OUT_THRESHOLD)
        each.add_argument("--no-rankme", action="store_true", help="the package's default alarm: RankMe not watched")
    args = parser.parse_args(argv)
    if args.mode == "simulate":
        csv = args.csv or Path(__file__).resolve().parent / "results" / f"collapse_runs_{args.dataset}.csv"
        text = simulate(csv, args.rankme_threshold, args.left_out_threshold, args.small_evals, not args.no_rankme)
    else:
        rankme_threshold = (
            None if args.no_rankme else args.rankme_threshold or rankme_threshold_for(args.probe_size, 64)
        )
        thresholds = (rankme_threshold, args.left_out_threshold)
        seeds, failing = tuple(args.seeds), tuple(args.failing_seeds)
        text = fit_report(
            args.epochs, args.probe_size, args.levels, thresholds, seeds, failing, args.dataset, args.cache_dir
        )
    if args.output is not None:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
