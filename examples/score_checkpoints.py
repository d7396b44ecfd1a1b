"""Rank train_digits.py's checkpoints by RMQM with ``rmqm score``, and check the ranking against 1-NN accuracy.

The ranking is the ``rmqm score`` command's (``rmqm_callback.checkpoints.score_checkpoint``): each
checkpoint is evaluated with the probe, noise and settings the callback recorded in it, so the
values are the ones it logged. From the repository root, the command alone does the same::

    PYTHONPATH=examples rmqm score lightning_logs/nt-xent/version_0/checkpoints --module _methods:EncoderModule

This script adds one labelled check, ``--accuracy``: the 1-NN accuracy of the validation digits
against the training digits for each checkpoint, and (over 10 checkpoints or more) the Spearman
rho of RMQM with it. Within one run, expect RMQM to rank the early epochs first (see the README).

Run from the repository root::

    python examples/score_checkpoints.py lightning_logs/nt-xent/version_0/checkpoints
    python examples/score_checkpoints.py lightning_logs/nt-xent/version_0/checkpoints --accuracy --levels 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import torch
from _data import all_classes_split
from _downstream import embed, knn_accuracy
from _methods import EncoderModule
from _stats import spearman

from rmqm_callback.checkpoints import find_checkpoints, ranked, score_checkpoint

#: Fewer checkpoints than this get no correlation printed: a rank correlation of a handful is noise.
MIN_FOR_CORRELATION = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="folder searched (recursively) for *.ckpt files")
    parser.add_argument("--levels", type=int, default=None, help="noise levels (default: what the callback used)")
    parser.add_argument(
        "--accuracy", action="store_true", help="also 1-NN accuracy (uses labels) of validation vs training digits"
    )
    parser.add_argument("--probe-size", type=int, default=256, help="train_digits.py --probe-size (for the split)")
    parser.add_argument("--seed", type=int, default=0, help="train_digits.py --seed (for the split)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def accuracy_of(path: str, args: argparse.Namespace) -> float:
    """1-NN accuracy of the validation digits against the training digits of train_digits.py's split."""
    data = all_classes_split("digits", args.probe_size, args.seed)
    model = EncoderModule.load_from_checkpoint(path, map_location="cpu")
    return knn_accuracy(embed(model, data["train_x"]), data["train_y"], embed(model, data["val_x"]), data["val_y"])


def main(argv: list[str] | None = None) -> None:
    """Score every checkpoint under the folder and print them ranked by RMQM."""
    args = parse_args(argv)
    try:
        paths = find_checkpoints([args.folder])
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    torch.set_num_threads(args.threads)
    print(f"Scoring {len(paths)} checkpoint(s) as the callback evaluated them", flush=True)
    start = time.perf_counter()
    rows = ranked([row for path in paths for row in score_checkpoint(path, EncoderModule, levels=args.levels)[0]])
    if args.accuracy:
        for row in rows:
            row["accuracy"] = accuracy_of(row["checkpoint"], args)
    accuracy_header = "   1-NN |" if args.accuracy else ""
    print(f"rank |    RMQM |      D |   D_RC |   P_RC |{accuracy_header} epoch | checkpoint")
    for rank, row in enumerate(rows, start=1):
        cells = [f"{rank:>4}", f"{row['RMQM']:>7.4f}", *(f"{row[key]:>6.4f}" for key in ("D", "D_RC", "P_RC"))]
        cells += [f"{row['accuracy']:>6.4f}"] if args.accuracy else []
        print(" | ".join([*cells, f"{row['epoch']:>5}", row["checkpoint"]]))
    print(f"Best by RMQM: {rows[0]['checkpoint']} ({time.perf_counter() - start:.1f} s)")
    if args.accuracy and len(rows) >= MIN_FOR_CORRELATION:
        rho = spearman([row["RMQM"] for row in rows], [row["accuracy"] for row in rows])
        print(f"Spearman rho of RMQM with 1-NN accuracy over these {len(rows)} checkpoints: {rho:+.2f}")
    elif args.accuracy:
        print(
            f"No correlation printed: {len(rows)} checkpoints are too few for one to mean anything"
            f" (it needs {MIN_FOR_CORRELATION} or more)."
        )


if __name__ == "__main__":
    main()
