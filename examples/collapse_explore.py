"""Collapse and divergence: what RankMe, alpha-ReQ and RMQM's left-out shares do, epoch by epoch.

Data for a collapse alarm built from Lightning's ``EarlyStopping`` (see ``collapse_alarm.py``), on
``--dataset`` (``_data.DATASETS``, default digits). Every run uses ``train_digits.py``'s set-up (every
class, ``holdout_split(..., val_fraction=0.15)``, a 256-input held-out probe, batch 128, embedding size
64 unless a run says otherwise) with the data set's encoder, and is measured at
initialisation (epoch 0) and after every training epoch, on the probe, in eval mode, as a guest (the
training's random streams are untouched):

* ``rankme``, ``alpha_req``: ``rmqm_callback.functional.spectral`` of the clean probe representations
  (NaN where they are not finite or the function raises on a degenerate spectrum); ``nonfinite_clean``:
  share of probes whose clean representation holds a NaN/inf;
* for each RMQM setting (``L100``: the paper's 100 noise levels on the 256 probes, ``L20``: 20 levels,
  ``small``: the first 64 probes with 10 levels, the automated-test setting): ``RMQM``, ``D``, ``D_RC``,
  ``P_RC``, ``D_RC_left_out / num_probes``, ``P_RC_left_out / num_probes`` and the share of probes with a
  non-finite representation somewhere on the trajectory, computed exactly as ``RMQMCallback`` does
  (``accumulate(..., skip_non_finite=True)``; every RMQM value is NaN when a probe was skipped);
  ``rankme_small``, ``alpha_req_small`` are the spectral scores of those 64 probes;
* ``unit_spread``: the root-mean-square distance of the clean probe's L2-normalised representations to
  their mean (0: every probe points the same way; scale-free, unlike ``mean_norm``; NaN where a
  representation is not finite). ``L100_D / unit_spread`` is how far the noise moves a representation
  against how far apart the probes are;
* ``knn_accuracy``: 1-NN (cosine) accuracy of the validation images against the training images.

Groups of runs: ``healthy`` (the paper's five methods x seeds 0, 1 x Adam lr 1e-3 / SGD lr 0.05, as in
``train_digits.py``), ``dims`` (healthy runs and a collapsing run at embedding sizes 16 and 128),
``collapse`` (SimSiam-like loss without stop-gradient, ``_collapse_model.SimSiamModule``), ``control``
(the same with stop-gradient: SimSiam proper) and ``divergence`` (``EncoderModule`` with a learning rate
1,000-10,000 times too high). A run whose clean probe representations are all non-finite stops there.
The CSV goes to ``--output`` (default ``examples/results/collapse_runs_<dataset>.csv``).

Run from the repository root::

    python examples/collapse_explore.py                                  # 42 runs, ~55 min on 2 busy CPU cores
    python examples/collapse_explore.py --groups collapse divergence --epochs 5
    python examples/collapse_explore.py --dataset mnist1d --groups collapse --epochs 5
    python examples/collapse_explore.py --dataset glyphs --groups healthy collapse divergence --only /s0 --epochs 10
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import multiprocessing
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _collapse_model import SimSiamModule
from _data import DATASETS, all_classes_split
from _data_cache import DEFAULT_CACHE_DIR
from _downstream import embed, knn_accuracy, safe_score
from _fits import init_worker, quiet_trainer
from _methods import METHODS, EncoderModule
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from rmqm_callback import RMQM, GaussianNoise
from rmqm_callback.evaluation._stream import accumulate, guest_of
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import as_probe
from rmqm_callback.functional.spectral import alpha_req, rankme

GROUPS = ("healthy", "dims", "collapse", "control", "divergence")
HEALTHY_LR = {"adam": 1e-3, "sgd": 0.05}
#: name -> (probes used: the first n of the probe, noise levels) of each RMQM setting measured.
SETTINGS = {"L100": (256, 100), "L20": (256, 20), "small": (64, 10)}
RMQM_COLUMNS = ("RMQM", "D", "D_RC", "P_RC", "D_RC_left_out_share", "P_RC_left_out_share", "nonfinite_share", "seconds")


def all_runs() -> list[dict[str, Any]]:
    """Every run of the study: group, model (``method``), optimizer, learning rate, seed, embedding size."""
    runs: list[dict[str, Any]] = []

    def add(group: str, method: str, optimizer: str, lr: float, seeds: tuple[int, ...] = (0, 1), dim: int = 64):
        for seed in seeds:
            name = f"{method}/{optimizer}-{lr:g}/d{dim}/s{seed}"
            runs.append(dict(run=name, group=group, method=method, optimizer=optimizer, lr=lr, seed=seed, dim=dim))

    for method in METHODS:
        for optimizer, lr in HEALTHY_LR.items():
            add("healthy", method, optimizer, lr)
    for dim in (16, 128):
        for method in ("cross-entropy", "nt-xent", "triplet-supervised"):
            add("dims", method, "adam", 1e-3, seeds=(0,), dim=dim)
        add("dims", "simsiam-no-stopgrad", "adam", 1e-3, seeds=(0,), dim=dim)
    add("collapse", "simsiam-no-stopgrad", "adam", 1e-3)
    add("collapse", "simsiam-no-stopgrad", "adam", 1e-2)
    add("collapse", "simsiam-no-stopgrad", "sgd", 0.05)
    add("control", "simsiam", "adam", 1e-3)
    add("divergence", "cross-entropy", "sgd", 1.0)
    add("divergence", "cross-entropy", "adam", 1.0)
    add("divergence", "nt-xent", "adam", 10.0)
    return runs


def make_model(run: dict[str, Any], dataset: str = "digits") -> pl.LightningModule:
    """The LightningModule of a run on ``dataset`` (built after seeding, so its weights follow the seed)."""
    method = run["method"]
    if method.startswith("simsiam"):
        return SimSiamModule(
            run["dim"], run["optimizer"], run["lr"], stop_gradient=method == "simsiam", dataset=dataset
        )
    classes = len(DATASETS[dataset].class_names)
    return EncoderModule(method, run["dim"], run["optimizer"], lr=run["lr"], num_classes=classes, dataset=dataset)


def unit_spread(z: torch.Tensor) -> float:
    """Root-mean-square distance of the rows of ``z``, L2-normalised in float64, to their mean (a zero row stays 0)."""
    z = z.double()
    unit = z / z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return float((unit - unit.mean(dim=0)).norm(dim=1).pow(2).mean().sqrt())


def rmqm_like_callback(model: pl.LightningModule, probe: torch.Tensor, levels: int) -> dict[str, float]:
    """RMQM under white noise exactly as ``RMQMCallback`` computes it, plus the shares of left-out probes."""
    metric = RMQM()
    start = time.perf_counter()
    with guest_of(model, torch.device("cpu")), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RMQMCollapseWarning: recorded as +inf D_RC / P_RC
        skipped = accumulate(
            metric, Encoder(model), as_probe(probe), GaussianNoise(levels=levels),
            batch_size=256, device=torch.device("cpu"), skip_non_finite=True,
        )  # fmt: skip
        out = {"nonfinite_share": skipped / len(probe)}
        if skipped:  # the callback logs NaN for every quantity of this evaluation
            out.update({key: math.nan for key in RMQM_COLUMNS[:6]})
        else:
            result = {key: float(value) for key, value in metric.compute().items()}
            out.update({key: result[key] for key in ("RMQM", "D", "D_RC", "P_RC")})
            out["D_RC_left_out_share"] = result["D_RC_left_out"] / result["num_probes"]
            out["P_RC_left_out_share"] = result["P_RC_left_out"] / result["num_probes"]
    out["seconds"] = time.perf_counter() - start
    return out


class Recorder(Callback):
    """One row of measurements at train start (epoch 0) and after every training epoch."""

    def __init__(self, run: dict[str, Any], data: dict[str, torch.Tensor]) -> None:
        self.run, self.data, self.rows = run, data, []

    def _record(self, trainer: pl.Trainer, model: pl.LightningModule, epoch: int) -> None:
        data = self.data
        with torch.random.fork_rng():
            z = embed(model, data["probe_x"])
            finite = bool(torch.isfinite(z).all())
            small = z[: SETTINGS["small"][0]]
            row: dict[str, Any] = {
                **self.run,
                "epoch": epoch,
                "train_loss": float(trainer.callback_metrics.get("train_loss", math.nan)) if epoch else math.nan,
                "rankme": safe_score(rankme, z),
                "alpha_req": safe_score(alpha_req, z),
                "rankme_small": safe_score(rankme, small),
                "rankme_centred": safe_score(rankme, z - z.mean(dim=0, keepdim=True)),
                "rankme_centred_small": safe_score(rankme, small - small.mean(dim=0, keepdim=True)),
                "alpha_req_small": safe_score(alpha_req, small),
                "nonfinite_clean": float((~torch.isfinite(z)).any(1).float().mean()),
                "mean_norm": float(z.norm(dim=1).mean()),
                "unit_spread": unit_spread(z) if finite else math.nan,
                "knn_accuracy": math.nan,
            }
            if finite:
                train_z, val_z = embed(model, data["train_x"]), embed(model, data["val_x"])
                if torch.isfinite(train_z).all() and torch.isfinite(val_z).all():
                    row["knn_accuracy"] = knn_accuracy(train_z, data["train_y"], val_z, data["val_y"])
            for name, (n, levels) in SETTINGS.items():
                for key, value in rmqm_like_callback(model, data["probe_x"][:n], levels).items():
                    row[f"{name}_{key}"] = value
        self.rows.append(row)
        if row["nonfinite_clean"] == 1.0:
            trainer.should_stop = True  # nothing left to measure

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, 0)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, trainer.current_epoch + 1)


def load_data(seed: int, probe_size: int, dataset: str = "digits", cache_dir: Path | None = DEFAULT_CACHE_DIR):
    """``train_digits.make_loaders``'s split of every class: 15% validation, a held-out probe."""
    return all_classes_split(dataset, probe_size, seed, cache_dir)


def train_and_record(
    run: dict[str, Any], epochs: int, batch_size: int, dataset: str = "digits", cache_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Train one run on ``dataset`` for ``epochs`` epochs, recording every epoch; returns its rows."""
    start = time.perf_counter()
    pl.seed_everything(run["seed"], verbose=False)
    data = load_data(run["seed"], SETTINGS["L100"][0], dataset, cache_dir)
    loader = DataLoader(TensorDataset(data["train_x"], data["train_y"]), batch_size=batch_size, shuffle=True)
    model = make_model(run, dataset)
    recorder = Recorder(run, data)
    trainer = quiet_trainer(epochs, loader, callbacks=[recorder])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, loader)
    seconds = time.perf_counter() - start
    for row in recorder.rows:
        row["run_seconds"] = seconds
    return recorder.rows


def main(argv: list[str] | None = None) -> None:
    """Run the selected groups in worker processes and write one CSV row per run and epoch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--only", nargs="+", default=None, help="keep the runs whose name holds one of these")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="runs trained in parallel, 1 torch thread each")
    parser.add_argument("--output", type=Path, help="default: examples/results/collapse_runs_<dataset>.csv")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where generated data are kept")
    args = parser.parse_args(argv)
    args.output = args.output or Path(f"examples/results/collapse_runs_{args.dataset}.csv")
    load_data(0, SETTINGS["L100"][0], args.dataset, args.cache_dir)  # make and cache generated data once
    runs = [run for run in all_runs() if run["group"] in args.groups]
    if args.only:
        runs = [run for run in runs if any(part in run["run"] for part in args.only)]
    # slow runs first: the self-supervised ones embed two views per step
    runs.sort(key=lambda run: run["method"] in ("cross-entropy", "triplet-supervised", "triplet-entropy"))
    print(f"{len(runs)} runs x {args.epochs} epochs with {args.workers} workers ...", flush=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker) as pool:
        task = functools.partial(train_and_record, dataset=args.dataset, cache_dir=args.cache_dir)
        futures = [pool.submit(task, run, args.epochs, args.batch_size) for run in runs]
        for done, future in enumerate(as_completed(futures), 1):
            mine = future.result()
            rows.extend(mine)
            last = mine[-1]
            print(
                f"[{done:>2}/{len(runs)}] {last['run']:<42} epochs {last['epoch']:>2}  RankMe {mine[0]['rankme']:5.2f}"
                f" -> {last['rankme']:5.2f}  1-NN {last['knn_accuracy']:.3f}  ({last['run_seconds']:.0f} s)",
                flush=True,
            )
    order = {run["run"]: i for i, run in enumerate(all_runs())}
    rows.sort(key=lambda row: (order[row["run"]], row["epoch"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {args.output} ({len(rows)} rows) in {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
