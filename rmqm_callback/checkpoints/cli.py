"""The ``rmqm`` command: ``rmqm score PATH... --module MODULE:CLASS`` ranks checkpoints by RMQM.

Examples:
    ```bash
    rmqm score lightning_logs/version_0/checkpoints --module my_project.models:Encoder
    python -m rmqm_callback score run.ckpt --module my_project.models:Encoder --json
    ```
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from rmqm_callback._version import __version__
from rmqm_callback.alterations._recorded import resolve
from rmqm_callback.checkpoints.scoring import find_checkpoints, load_probe, ranked, score_checkpoint
from rmqm_callback.keys import KNN_ACCURACY_KEY


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmqm", description="RMQM for PyTorch Lightning checkpoints.")
    parser.add_argument("--version", action="version", version=f"rmqm_callback {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="rank checkpoints by RMQM, evaluated as the RMQMCallback in them did",
        description=(
            "Score checkpoint files (or every *.ckpt under folders) with the probe, alterations and settings"
            " that RMQMCallback recorded in them, so the values equal what it logged for those weights;"
            " print them ranked by RMQM, best first."
        ),
    )
    score.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint files or folders of them")
    score.add_argument(
        "--module", required=True, metavar="MODULE:CLASS", help="the LightningModule class that loads them"
    )
    score.add_argument("--probe", metavar="FILE", help="torch.save of the probe (inputs, or (inputs, labels))")
    score.add_argument("--levels", type=int, metavar="N", help="levels of every alteration (default: recorded)")
    score.add_argument("--batch-size", type=int, metavar="N", help="probes per block (default: recorded)")
    score.add_argument("--device", default="cpu", help="where to evaluate (default: cpu)")
    score.add_argument("--embed", metavar="NAME", help="submodule name or MODULE:NAME (default: recorded)")
    score.add_argument("--preprocess", metavar="MODULE:NAME", help="input preprocessing (default: recorded)")
    score.add_argument("--knn", type=int, metavar="K", help="k of a labelled probe's k-NN accuracy (default: recorded)")
    score.add_argument("--json", action="store_true", help="print a JSON list of results instead of a table")
    score.add_argument("--no-progress", action="store_true", help="no progress bar over the checkpoints")
    return parser


def _module_class(path: str) -> Any:
    if ":" not in path:
        raise ValueError(f"--module must be MODULE:CLASS (e.g. my_project.models:Encoder), got {path!r}.")
    cls = resolve(path)
    if not isinstance(cls, type) or not hasattr(cls, "load_from_checkpoint"):
        raise ValueError(f"--module {path} is not a LightningModule class (it has no load_from_checkpoint).")
    return cls


def _positive(name: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for key in dict.fromkeys(row["key"] for row in rows):
        mine = [row for row in rows if row["key"] == key]
        columns = [("RMQM", 8), ("D", 7), ("D_RC", 7), ("P_RC", 7)]
        knn = all(KNN_ACCURACY_KEY in row for row in mine)  # a labelled probe: its k-NN accuracy
        columns += [(KNN_ACCURACY_KEY, 12)] if knn else []
        lines.append(f"{key}: {len(mine)} checkpoint(s), best RMQM first")
        lines.append(" | ".join(["rank", *(f"{name:>{width}}" for name, width in columns), "epoch", "checkpoint"]))
        for rank, row in enumerate(mine, start=1):
            cells = [f"{row[name]:>{width}.4f}" for name, width in columns]
            epoch = "-" if row["epoch"] is None else str(row["epoch"])
            lines.append(" | ".join([f"{rank:>4}", *cells, f"{epoch:>5}", row["checkpoint"]]))
        lines.append("")
    return "\n".join(lines)


def score_command(args: argparse.Namespace) -> int:
    """Run ``rmqm score``; print the ranking (or JSON) on stdout and notes on stderr."""
    _positive("--levels", args.levels, 3)
    _positive("--batch-size", args.batch_size, 1)
    _positive("--knn", args.knn, 1)
    module_class = _module_class(args.module)
    paths = find_checkpoints(args.paths)
    probe = None if args.probe is None else load_probe(args.probe)
    progress = paths
    if not args.no_progress:
        from tqdm.auto import tqdm

        progress = tqdm(paths, desc="RMQM checkpoints", unit="ckpt", file=sys.stderr, leave=False)
    rows, notes = [], []
    for path in progress:
        scored, said = score_checkpoint(
            path,
            module_class,
            probe=probe,
            levels=args.levels,
            batch_size=args.batch_size,
            device=args.device,
            embed=args.embed,
            preprocess=args.preprocess,
            knn=args.knn,
        )
        rows += scored
        notes += said
    rows = ranked(rows)
    for note in dict.fromkeys(notes):
        print(f"rmqm score: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps([{key: _finite(value) for key, value in row.items()} for row in rows], indent=1))
    else:
        print(_table(rows), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rmqm`` and ``python -m rmqm_callback``; exits 2 with a message on a usage error."""
    parser = _parser()
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())  # --module from the current folder, as `python -m` would import it
    try:
        code = score_command(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError, AttributeError) as error:
        parser.exit(2, f"rmqm {args.command}: error: {error}\n")
    raise SystemExit(code)
