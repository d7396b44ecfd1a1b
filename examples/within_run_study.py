"""Inside one training run, does RMQM rank the epochs' checkpoints by downstream accuracy?

For each method (default cross-entropy, NT-Xent, triplet-supervised) x seed, a real ``pytorch_lightning``
fit of 30 epochs on ``--dataset`` (``_data.DATASETS``, default digits) keeps the weights at epoch 0
(random initialisation) and at every epoch end (:class:`_within.EpochSnapshots`). Every checkpoint is
then scored, in two set-ups:

* ``transfer`` (as ``correlation_study.py``): trained on the seen classes (digits 0-4); RMQM probe = 256
  held-out inputs of them; accuracy = 1-NN (cosine) on the unseen classes (digits 5-9), fit on one fixed
  half and tested on the other.
* ``all-<items>`` (``all-digits``, ``all-signals``, ``all-letters``; as ``train_digits.py``):
  ``holdout_split(val_fraction=0.15, probe_size=256, seed=seed)`` of every class; accuracy = 1-NN of the
  validation inputs against the training inputs.

Per checkpoint: RMQM, D, D_RC, P_RC (``rmqm_callback.score``, ``GaussianNoise`` with the paper's 100
levels), RankMe and alpha-ReQ of the probe's clean embeddings, 1-NN accuracy, and two participation
ratios (PR = (sum s^2)^2 / sum s^4): of the singular values of the Jacobian of the L2-normalised
representation at each probe image (averaged), and of the centred normalised probe embeddings. Per run:
Spearman of each score with accuracy and with the epoch, the epoch ``ModelCheckpoint(mode="max"/"min")``
would keep on each score, and the accuracy that costs. Outputs in ``--output-dir``:
``within_run_<dataset>.csv`` (one row per checkpoint), ``within_run_<dataset>.md``,
``within_run_<dataset>.png`` and ``checkpoint_selection_<dataset>.md`` (``checkpoint_selection.py``: the
epoch ``ModelCheckpoint`` keeps on the labelled probe's k-NN accuracy, for probes of 64 / 256 / 512 and
k 1 / 3 / 5 / 10). Runs go to ``--workers`` processes (one torch thread each); the CSV does not depend on
their number.

Run from the repository root::

    python examples/within_run_study.py --quick                            # 6 short runs, 20-70 s on 2 CPU cores
    python examples/within_run_study.py --output-dir examples/results      # 12 runs x 31 checkpoints, 21-28 min
    python examples/within_run_study.py --dataset mnist1d --quick
    python examples/within_run_study.py --dataset mnist1d --probe-size 512 --output-dir examples/results
    python examples/within_run_study.py --dataset glyphs --probe-size 512 --seeds 0 --setups transfer ...
    python examples/within_run_study.py --dataset glyphs --probe-size 512 --seeds 0 --setups all-letters ...
    python examples/within_run_study.py --dataset digits --probe-size 512 --setups all-digits ...

(the committed ``within_run_glyphs_all_letters.*`` and ``within_run_digits_probe512.*`` are the last two, renamed.)
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from math import nan
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _data import DATASETS, all_classes_split, get_dataset
from _data_cache import DEFAULT_CACHE_DIR
from _downstream import embed, knn_accuracy
from _fits import init_worker, quiet_trainer
from _methods import METHODS, EncoderModule
from _within import EpochSnapshots, jacobian_participation_ratio, representation_participation_ratio
from _within_report import write_markdown, write_plot
from checkpoint_selection import report_path, write_selection_markdown
from correlation_study import LEARNING_RATES, load_data
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import GaussianNoise, score
from rmqm_callback.functional import knn_accuracy as probe_knn_accuracy
from rmqm_callback.functional.spectral import alpha_req, rankme

DEFAULT_METHODS = ("cross-entropy", "nt-xent", "triplet-supervised")
#: The checkpoint-selection study (issue #17): the labelled probe's leave-one-out k-NN accuracy, as the callback
#: logs it, on the first n of the held-out probe (nested: the probe a ``probe_size=n`` split would give), per k.
SELECTION_PROBES = (64, 256, 512)
SELECTION_KS = (1, 3, 5, 10)
SELECTION_COLUMNS = tuple(f"probe_knn_n{n}_k{k}" for n in SELECTION_PROBES for k in SELECTION_KS)
COLUMNS = (
    "setup", "method", "seed", "epoch", "train_loss", "RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se",
    "rankme", "alpha_req", "jacobian_pr", "representation_pr", "knn_accuracy", *SELECTION_COLUMNS,
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; ``--quick`` gives small defaults that explicit arguments still override."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    setups = setup_names(parser.parse_known_args(argv)[0].dataset)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--setups", nargs="+", choices=setups, default=list(setups))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs; checkpoints 0..epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--probe-size", type=int, default=256, help="held-out probe images RMQM is measured on")
    parser.add_argument("--levels", type=int, default=100, help="noise levels incl. the clean one (paper: 100)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained in parallel, 1 torch thread each")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/within_run_study"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where generated data are kept")
    parser.add_argument("--quick", action="store_true", help="defaults: seed 0, 3 epochs, 64 probes, 10 levels")
    if parser.parse_args(argv).quick:
        parser.set_defaults(seeds=[0], epochs=3, probe_size=64, levels=10)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.workers < 1:
        parser.error(f"--epochs and --workers must be >= 1, got {args.epochs} and {args.workers}.")
    return args


def setup_names(dataset: str) -> tuple[str, str]:
    """The set-ups' names on a data set: ``transfer`` and ``all-<items>`` (``all-digits`` on the digits)."""
    return "transfer", f"all-{get_dataset(dataset).items}"


def setup_data(settings: dict[str, object], setup: str, seed: int) -> tuple[dict[str, torch.Tensor], int]:
    """The tensors of a set-up and its number of training classes.

    ``all-<items>``: the train / validation / probe split of every class, as ``train_digits.py`` makes it;
    1-NN accuracy is of the validation inputs (``test``) against the training inputs (``fit``).
    """
    dataset = get_dataset(str(settings["dataset"]))
    if setup == "transfer":
        return load_data(settings), len(dataset.seen)
    data = all_classes_split(dataset.name, int(settings["probe_size"]), seed, settings["cache_dir"])
    probe = {key: data[key] for key in ("train_x", "train_y", "probe_x", "probe_y")}
    downstream = {"fit_x": data["train_x"], "fit_y": data["train_y"], "test_x": data["val_x"], "test_y": data["val_y"]}
    return {**probe, **downstream}, len(dataset.class_names)


def train_snapshots(job: dict[str, object], settings: dict[str, object]) -> tuple[EncoderModule, EpochSnapshots]:
    """Fit one encoder with a real Trainer, keeping the weights of epochs 0..``epochs`` in memory."""
    data, classes = setup_data(settings, str(job["setup"]), int(job["seed"]))
    pl.seed_everything(int(job["seed"]), verbose=False)
    method, dim = str(job["method"]), settings["embedding_dim"]
    model = EncoderModule(method, dim, "adam", LEARNING_RATES["adam"], classes, dataset=settings["dataset"])
    loader = DataLoader(
        TensorDataset(data["train_x"], data["train_y"]), batch_size=settings["batch_size"], shuffle=True
    )
    snapshots = EpochSnapshots()
    trainer = quiet_trainer(settings["epochs"], loader, callbacks=[snapshots])
    trainer.fit(model, loader)
    return model, snapshots


def score_checkpoint(model: EncoderModule, data: dict[str, torch.Tensor], levels: int) -> dict[str, float]:
    """Every per-checkpoint number of the study for the weights currently in ``model``."""
    rmqm = score(model, data["probe_x"], GaussianNoise(levels=levels))
    probe_z = embed(model, data["probe_x"])
    return {
        **{key: float(rmqm[key]) for key in ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se")},
        "rankme": float(rankme(probe_z)),
        "alpha_req": float(alpha_req(probe_z)),
        "jacobian_pr": jacobian_participation_ratio(model, data["probe_x"]),
        "representation_pr": representation_participation_ratio(probe_z),
        "knn_accuracy": knn_accuracy(
            embed(model, data["fit_x"]), data["fit_y"], embed(model, data["test_x"]), data["test_y"]
        ),
        **probe_knn_columns(probe_z, data["probe_y"]),
    }


def probe_knn_columns(probe_z: Tensor, probe_y: Tensor) -> dict[str, float]:
    """``probe_knn_n{n}_k{k}``: leave-one-out k-NN accuracy of the first ``n`` probes (NaN if the probe is smaller)."""
    return {
        f"probe_knn_n{n}_k{k}": float(probe_knn_accuracy(probe_z[:n], probe_y[:n], k)) if n <= len(probe_z) else nan
        for n in SELECTION_PROBES
        for k in SELECTION_KS
    }


def run_job(job: dict[str, object], settings: dict[str, object]) -> tuple[list[dict[str, object]], float]:
    """Train one run and score all its checkpoints: one row per epoch, and the seconds it took."""
    start = time.perf_counter()
    model, snapshots = train_snapshots(job, settings)
    data, _ = setup_data(settings, str(job["setup"]), int(job["seed"]))
    rows = []
    for epoch in sorted(snapshots.snapshots):
        model.load_state_dict(snapshots.snapshots[epoch])
        numbers = score_checkpoint(model, data, settings["levels"])
        rows.append({**job, "epoch": epoch, "train_loss": snapshots.train_loss[epoch], **numbers})
    return [{key: row[key] for key in COLUMNS} for row in rows], time.perf_counter() - start


def run_all(jobs: list[dict[str, object]], settings: dict[str, object], workers: int) -> list[dict[str, object]]:
    """Run every job (in ``workers`` spawned processes when > 1); rows in job order, then epoch order."""
    results: dict[int, list[dict[str, object]]] = {}

    def report(index: int, rows: list[dict[str, object]], seconds: float) -> None:
        results[index] = rows
        first, last = rows[0], rows[-1]
        print(
            f"[{len(results):>2}/{len(jobs)}] {first['setup']:<10} {first['method']:<18} seed={first['seed']}"
            f"  RMQM {first['RMQM']:.3f} -> {last['RMQM']:.3f}"
            f"  1-NN {first['knn_accuracy']:.3f} -> {last['knn_accuracy']:.3f}  ({seconds:.0f} s)",
            flush=True,
        )

    if workers <= 1:
        init_worker()
        for index, job in enumerate(jobs):
            report(index, *run_job(job, settings))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
            futures = {pool.submit(run_job, job, settings): index for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                report(futures[future], *future.result())
    return [row for index in range(len(jobs)) for row in results[index]]


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    """One row per checkpoint; floats in full precision (``repr``), so two runs can be compared byte for byte."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    """Train and score every run, then write ``within_run_<dataset>.csv``, ``.png`` and ``.md``."""
    start = time.perf_counter()
    args = parse_args(argv)
    jobs = [
        {"setup": setup, "method": method, "seed": seed}
        for setup in args.setups
        for method in args.methods
        for seed in args.seeds
    ]
    settings = {
        "dataset": args.dataset,
        "cache_dir": args.cache_dir,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "embedding_dim": args.embedding_dim,
        "probe_size": args.probe_size,
        "levels": args.levels,
    }
    for setup in args.setups:  # make and cache a generated data set once, before the workers read it
        setup_data(settings, setup, args.seeds[0])
    print(f"Training and scoring {len(jobs)} runs x {args.epochs + 1} checkpoints, {args.workers} worker(s) ...")
    rows = run_all(jobs, settings, args.workers)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = args.output_dir / f"within_run_{args.dataset}"
    write_csv(rows, stem.with_suffix(".csv"))
    write_plot(rows, stem.with_suffix(".png"))
    wall = time.perf_counter() - start
    text = write_markdown(rows, settings, vars(args), wall, stem.with_suffix(".md"))
    write_selection_markdown(rows, args.dataset, report_path(stem.with_suffix(".csv")))
    print("\n" + text)
    print(f"Wrote {stem}.csv, {stem.name}.md, {stem.name}.png, {report_path(stem.with_suffix('.csv')).name}")
    print(f"Total {wall:.0f} s.")


if __name__ == "__main__":
    main()
