"""Train a digits encoder with RMQMCallback: TensorBoard (or W&B, MLflow) logs, a collapse alarm, a per-epoch table.

The probe is a held-out split of scikit-learn's bundled 8x8 digits (no download, no labels used by
RMQM). Every epoch the callback alters the probe with white noise of growing strength, embeds every
level and logs ``rmqm/noise/RMQM``, ``/D``, ``/D_RC``, ``/P_RC``, the left-out shares, ``/seconds``
and the collapse signals ``rmqm/RankMe`` and ``rmqm/alpha_ReQ``. The collapse alarm (the README's
recipe: EarlyStopping on RankMe and the left-out shares) stops a run that diverges or collapses;
``ModelCheckpoint`` keeps the last checkpoint and the ``--save-top-k`` with the highest RMQM (within
one run those are early epochs: see the README's within-run study), and ``--early-stopping`` stops
when RMQM stops improving (within one run: soon).

Run from the repository root::

    python examples/train_digits.py                      # SimCLR (NT-Xent), about 30 s on 2 CPU cores
    python examples/train_digits.py --method cross-entropy --early-stopping 3
    tensorboard --logdir lightning_logs
    WANDB_MODE=offline python examples/train_digits.py --logger wandb     # pip install -e ".[loggers]"
    python examples/train_digits.py --logger mlflow                       # to lightning_logs/mlflow.db

What each logger shows, and where: docs/loggers.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _digits*
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _collapse_recipe import collapse_alarm, rankme_threshold_for
from _digits import all_digits_split, quiet_lightning
from _digits_model import METHODS, OPTIMIZERS, EncoderModule
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.keys import D_KEY, D_RC_KEY, P_RC_KEY, RMQM_KEY, SECONDS_KEY, metric_key

PREFIX, ALTERATION = "rmqm", "noise"
MONITOR = metric_key(PREFIX, ALTERATION, RMQM_KEY)  # "rmqm/noise/RMQM"
LOGGERS = ("tensorboard", "wandb", "mlflow")
PROJECT = "rmqm-digits"  # the W&B project and the MLflow experiment
#: (header, key in trainer.callback_metrics, format) of each column of the per-epoch table.
COLUMNS = (
    ("epoch", None, "{:>5d}"),
    ("train loss", "train_loss", "{:>10.4f}"),
    ("D", metric_key(PREFIX, ALTERATION, D_KEY), "{:>7.4f}"),
    ("D_RC", metric_key(PREFIX, ALTERATION, D_RC_KEY), "{:>7.4f}"),
    ("P_RC", metric_key(PREFIX, ALTERATION, P_RC_KEY), "{:>7.4f}"),
    ("RMQM", MONITOR, "{:>7.4f}"),
    ("RMQM s", metric_key(PREFIX, ALTERATION, SECONDS_KEY), "{:>6.2f}"),
)


class EpochTable(Callback):
    """Print one table row per training epoch from ``trainer.callback_metrics`` (process 0 only).

    List it after :class:`~rmqm_callback.RMQMCallback`: by ``on_train_epoch_end`` the epoch's RMQM
    (logged at the end of validation) and the epoch-mean training loss are both in the callback metrics.
    """

    def _line(self, cells: list[str]) -> str:
        return " | ".join(cell.rjust(len(fmt.format(0))) for cell, (_, _, fmt) in zip(cells, COLUMNS))

    @override
    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        header = self._line([name for name, _, _ in COLUMNS])
        print(header, "-" * len(header), sep="\n", flush=True)

    @override
    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        cells = []
        for _, key, fmt in COLUMNS:
            if key is None:
                cells.append(fmt.format(trainer.current_epoch))
            elif key in metrics:
                cells.append(fmt.format(float(metrics[key])))
            else:
                cells.append("-")
        print(self._line(cells), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=METHODS, default="nt-xent", help="training method (default nt-xent)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="sgd: SGD with Nesterov momentum")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3 Adam, 0.05 SGD)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--probe-size", type=int, default=256, help="held-out digits RMQM is measured on")
    parser.add_argument("--levels", type=int, default=100, help="noise levels incl. the clean one (paper: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    parser.add_argument(
        "--early-stopping",
        type=int,
        nargs="?",
        const=3,
        default=None,
        metavar="PATIENCE",
        help="stop when RMQM has not improved for PATIENCE epochs (default 3 when given without a value)",
    )
    parser.add_argument("--save-top-k", type=int, default=3, help="checkpoints kept, highest RMQM first (and the last)")
    parser.add_argument("--no-alarm", action="store_true", help="no collapse alarm (EarlyStopping on RankMe)")
    parser.add_argument(
        "--logger", nargs="+", choices=LOGGERS, default=["tensorboard"], help="one or more (default tensorboard)"
    )
    parser.add_argument("--log-dir", default="lightning_logs", help="the loggers' save_dir (default lightning_logs)")
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else <log dir>/mlflow.db)",
    )
    parser.add_argument("--output-dir", default=None, help="checkpoint folder (default: <run log dir>/checkpoints)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for this tiny model)")
    parser.add_argument("--quick", action="store_true", help="smoke-run defaults: 2 epochs, 64 probes, 10 levels, d=16")
    if parser.parse_args(argv).quick:  # smaller defaults; explicit arguments still win
        parser.set_defaults(epochs=2, probe_size=64, levels=10, embedding_dim=16)
    args = parser.parse_args(argv)
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 0.05
    return args


def make_loaders(args: argparse.Namespace) -> tuple[DataLoader, DataLoader, torch.Tensor]:
    """Train and validation loaders of all ten digits, and the held-out probe images (labels unused)."""
    data = all_digits_split(args.probe_size, args.seed)
    train_loader = DataLoader(TensorDataset(data["train_x"], data["train_y"]), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(data["val_x"], data["val_y"]), batch_size=512)
    return train_loader, val_loader, data["probe_x"]


def mlflow_uri(args: argparse.Namespace) -> str:
    """``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``, else SQLite in the log dir (MLflow 3 refuses ./mlruns)."""
    default = f"sqlite:///{Path(args.log_dir).resolve() / 'mlflow.db'}"
    return args.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or default


def make_loggers(args: argparse.Namespace) -> list[Logger]:
    """The ``--logger`` loggers, each writing under ``--log-dir`` (MLflow: unless told another tracking URI)."""
    loggers: list[Logger] = []
    for name in dict.fromkeys(args.logger):
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(save_dir=args.log_dir, name=args.method, default_hp_metric=False))
        elif name == "wandb":  # online, or offline with WANDB_MODE=offline
            loggers.append(WandbLogger(save_dir=args.log_dir, project=PROJECT, name=args.method))
        else:
            artifacts = (Path(args.log_dir).resolve() / "mlflow-artifacts").as_uri()  # a new experiment's figures
            loggers.append(
                MLFlowLogger(PROJECT, run_name=args.method, tracking_uri=mlflow_uri(args), artifact_location=artifacts)
            )
    return loggers


def where_to_look(logger: Logger, args: argparse.Namespace) -> list[str]:
    """Where the run's values are, for each logger."""
    if isinstance(logger, TensorBoardLogger):
        return [f"TensorBoard logs:  {logger.log_dir}", f"Open TensorBoard:  tensorboard --logdir {args.log_dir}"]
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        if run.offline:
            folder = Path(run.dir).parent
            return [f"W&B offline run:   {folder}", f"Upload it:         wandb sync {folder}"]
        return [f"W&B run:           {run.url}"]
    assert isinstance(logger, MLFlowLogger)
    uri = mlflow_uri(args)
    lines = [f"MLflow run:        {logger.run_id} (experiment {PROJECT!r}, {uri})"]
    if uri.startswith("sqlite:"):
        lines.append(f"Open MLflow:       mlflow ui --backend-store-uri {uri}")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_lightning()
    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, verbose=False)
    train_loader, val_loader, probe = make_loaders(args)
    model = EncoderModule(args.method, args.embedding_dim, args.optimizer, lr=args.lr)

    loggers = make_loggers(args)
    checkpoint = ModelCheckpoint(
        dirpath=args.output_dir,
        monitor=MONITOR,
        mode="max",
        save_top_k=args.save_top_k,
        filename="epoch{epoch:02d}-rmqm{" + MONITOR + ":.4f}",
        auto_insert_metric_name=False,
    )
    # the latest epoch, overwritten every epoch: ModelCheckpoint(save_last=True) above would refresh
    # it only in epochs that enter the top k, and RMQM falls within a run
    last = ModelCheckpoint(dirpath=args.output_dir, filename="last", save_top_k=1, enable_version_counter=False)
    callbacks: list[Callback] = [
        checkpoint,
        last,
        RMQMCallback(probe, GaussianNoise(levels=args.levels), prefix=PREFIX),
        EpochTable(),
    ]
    if args.early_stopping is not None:
        callbacks.insert(0, EarlyStopping(monitor=MONITOR, mode="max", patience=args.early_stopping))
    if not args.no_alarm:
        callbacks += collapse_alarm(rankme_threshold_for(len(probe), args.embedding_dim))
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="auto",
        devices=1,
        logger=loggers,
        default_root_dir=args.log_dir,  # checkpoints go under it when the first logger keeps no files (MLflow)
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=len(train_loader),
    )
    print(
        f"Training {args.method} (d={args.embedding_dim}, {args.optimizer}) on {len(train_loader.dataset)} digits;"
        f" RMQM on {len(probe)} held-out probes x {args.levels} noise levels.",
        flush=True,
    )
    start = time.perf_counter()
    trainer.fit(model, train_loader, val_loader)
    if not trainer.is_global_zero:
        return
    print(f"\nDone in {time.perf_counter() - start:.1f} s ({trainer.current_epoch} epochs).")
    for logger in loggers:
        print(*where_to_look(logger, args), sep="\n")
    if checkpoint.best_model_path:
        score = float(checkpoint.best_model_score)
        print(f"Highest RMQM:      {checkpoint.best_model_path} ({MONITOR} = {score:.4f}; an early epoch, see README)")
        print(f"Last checkpoint:   {last.best_model_path}")
    print(f"Rank checkpoints:  python examples/score_checkpoints.py {Path(checkpoint.dirpath)}")
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # now, so that the run's files are complete when the script ends


if __name__ == "__main__":
    main()
