"""Rank saved checkpoints by RMQM after the fact, with ``rmqm_callback.score`` (no Trainer needed).

Every ``*.ckpt`` under a folder (for example the ones ``train_digits.py`` saved) is loaded, scored on
the same held-out digits probe with white noise, and printed best first: checkpoint selection without
labels, for runs that did not use the callback or to re-score them with other settings.

Run from the repository root::

    python examples/score_checkpoints.py lightning_logs/nt-xent/version_0/checkpoints
    python examples/score_checkpoints.py lightning_logs --probe-size 512 --levels 50
    python examples/score_checkpoints.py lightning_logs --accuracy   # add a labelled check: 1-NN accuracy
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _digits*
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import torch
from _digits import embed, holdout_split, knn_accuracy, load_digits_tensors
from _digits_model import EncoderModule
from _digits_stats import spearman
from torch import Tensor

from rmqm_callback import GaussianNoise, score

#: The ranking's columns: header, format, and the row key (the rank and the path are added around them).
COLUMNS = (
    ("RMQM", "{:>7.4f}", "RMQM"),
    ("D", "{:>6.4f}", "D"),
    ("D_RC", "{:>6.4f}", "D_RC"),
    ("P_RC", "{:>6.4f}", "P_RC"),
    ("method", "{:<18}", "method"),
    ("dim", "{:>4}", "dim"),
    ("epoch", "{:>5}", "epoch"),
)
ACCURACY_COLUMN = ("1-NN", "{:>6.4f}", "accuracy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="folder searched (recursively) for *.ckpt files")
    parser.add_argument("--probe-size", type=int, default=256, help="held-out digits to score on (as in training)")
    parser.add_argument("--levels", type=int, default=100, help="noise levels incl. the clean one (paper: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the digits split (train_digits.py --seed)")
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="also print 1-NN accuracy (uses labels) of the validation digits against the training digits",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def digits_split(probe_size: int, seed: int) -> dict[str, Tensor]:
    """The digits split of ``train_digits.py`` with the same ``--probe-size`` and ``--seed``."""
    images, labels = load_digits_tensors()
    train, val, probe = holdout_split(len(images), probe_size, val_fraction=0.15, seed=seed)
    return {
        "probe": images[probe],
        "train_x": images[train],
        "train_y": labels[train],
        "val_x": images[val],
        "val_y": labels[val],
    }


def score_checkpoint(path: Path, data: dict[str, Tensor], levels: int, accuracy: bool) -> dict[str, object]:
    """Load one checkpoint on the CPU; return its hyperparameters, epoch, RMQM components (and 1-NN accuracy)."""
    model = EncoderModule.load_from_checkpoint(path, map_location="cpu")
    epoch = torch.load(path, map_location="cpu", weights_only=True).get("epoch", -1)
    result = score(model, data["probe"], GaussianNoise(levels=levels))
    row = {
        "path": path,
        "method": model.hparams.method,
        "dim": model.hparams.embedding_dim,
        "epoch": epoch,
        **{key: float(result[key]) for key in ("D", "D_RC", "P_RC", "RMQM")},
    }
    if accuracy:
        train_z, val_z = embed(model, data["train_x"]), embed(model, data["val_x"])
        row["accuracy"] = knn_accuracy(train_z, data["train_y"], val_z, data["val_y"])
    return row


def main(argv: list[str] | None = None) -> None:
    """Score every checkpoint under the folder and print them ranked by RMQM."""
    args = parse_args(argv)
    paths = sorted(args.folder.rglob("*.ckpt"))
    if not paths:
        raise SystemExit(f"No *.ckpt file under {args.folder}.")
    torch.set_num_threads(args.threads)
    data = digits_split(args.probe_size, args.seed)
    print(f"Scoring {len(paths)} checkpoint(s): {args.probe_size} probes x {args.levels} noise levels", flush=True)
    start = time.perf_counter()
    rows = [score_checkpoint(path, data, args.levels, args.accuracy) for path in paths]
    rows.sort(key=lambda row: -row["RMQM"] if math.isfinite(row["RMQM"]) else math.inf)
    columns = COLUMNS[:4] + (ACCURACY_COLUMN,) * args.accuracy + COLUMNS[4:]
    widths = [len(fmt.format(0 if "f" in fmt else "")) for _, fmt, _ in columns]
    headers = (h.ljust(w) if "<" in fmt else h.rjust(w) for (h, fmt, _), w in zip(columns, widths))
    print(" | ".join(["rank", *headers, "checkpoint"]))
    for rank, row in enumerate(rows, start=1):
        cells = [fmt.format(row[key]) for _, fmt, key in columns]
        print(" | ".join([f"{rank:>4}", *cells, str(row["path"])]))
    print(f"Best by RMQM: {rows[0]['path']} ({time.perf_counter() - start:.1f} s)")
    if args.accuracy and len(rows) >= 3:
        rho = spearman([row["RMQM"] for row in rows], [row["accuracy"] for row in rows])
        print(f"Spearman rho of RMQM with 1-NN accuracy over these checkpoints: {rho:+.2f}")


if __name__ == "__main__":
    main()
