"""Replicate the RMQM paper's section 4 on a data set: does RMQM predict downstream 1-NN accuracy?

For every encoder of a grid (the paper's five methods x embedding sizes x {SGD with Nesterov momentum,
Adam} x seeds), trained on the seen classes of ``--dataset`` (``_data.DATASETS``: digits, mnist1d,
glyphs), measured on a fixed held-out probe of those classes:

* RMQM under white noise with the paper's schedule (``rmqm_callback.score``, ``GaussianNoise(levels=100)``:
  std 0 to 1), and its components D, D_RC, P_RC;
* RMQM under white noise scaled to the data: ``max_std = probe_std / 0.3081``, where ``probe_std`` is the
  standard deviation of all the probe's input values and 0.3081 that of MNIST's pixels, so the noise
  stands to the data as the paper's std 1 stood to MNIST (one rule, fixed before any run, for every
  data set);
* RankMe and alpha-ReQ (``rmqm_callback.functional.spectral``) of the probe's clean representations, as
  they are (uncentred) and minus their mean (centred);
* collapse, decided before any correlation was seen and from neither the scores nor the downstream task:
  an encoder is collapsed when the 1-NN accuracy of the probe against the training inputs (seen classes,
  cosine, in representation space) is below chance + 0.1, chance = 1 / number of seen classes, or its
  clean representations are not finite;
* downstream accuracy: 1-NN (cosine) on the unseen classes, fitted on one fixed half of their inputs and
  tested on the other half; "normalised accuracy" is that accuracy min-max scaled over all encoders of
  the grid (an affine map: correlations with it equal those with the raw accuracy).

Outputs in ``--output-dir`` (default ``outputs/correlation_study``), named with the data set:
``encoders_<name>.csv`` (one row per encoder), ``correlations_<name>.md`` (Pearson and Spearman of each
score with accuracy, percentile-bootstrap 95% intervals over encoders, over all encoders and over the
non-collapsed ones, and the run's wall time) and ``rmqm_vs_accuracy_<name>.png`` (the paper's Figure 4).
Each encoder is trained in its own process (``--workers``, one torch thread each); the results do not
depend on the number of workers. Generated data sets are cached in ``--cache-dir``.

Run from the repository root::

    python examples/correlation_study.py --quick                              # 10 encoders, 10-30 s
    python examples/correlation_study.py --dataset mnist1d --quick            # 10 encoders, under a minute
    python examples/correlation_study.py --output-dir examples/results        # digits: 120 encoders
    python examples/correlation_study.py --dataset glyphs --output-dir examples/results   # 120 encoders
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples' _modules
sys.path.append(str(Path(__file__).resolve().parents[1]))  # rmqm_callback from a checkout, if not installed

import pytorch_lightning as pl
import torch
from _correlation_report import write_outputs
from _data import DATASETS, get_dataset, transfer_split
from _data_cache import DEFAULT_CACHE_DIR
from _downstream import embed, knn_accuracy, safe_score
from _fits import quiet_trainer
from _grid import grid, run_grid
from _methods import METHODS, OPTIMIZERS, EncoderModule
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import GaussianNoise, score
from rmqm_callback.functional.spectral import alpha_req, rankme

LEARNING_RATES = {"adam": 1e-3, "sgd": 0.05}
#: MNIST's pixel standard deviation: the paper's noise (std up to 1.0) was this many data std's.
MNIST_PIXEL_STD = 0.3081
#: Above chance by this much, the seen-class 1-NN accuracy says an encoder has not collapsed.
COLLAPSE_MARGIN = 0.1
#: The full study's grid per data set: the digits' (4 embedding sizes, 30 epochs, every training input) for all
#: three. Fixed before any mnist1d or glyphs result, from the measured cost of a few encoders (4 epochs: 4-7 s
#: per mnist1d encoder, 8-13 s per glyphs encoder with 2 workers), which puts each full study at 20-35 min.
FULL = {name: {"dims": [16, 32, 64, 128], "epochs": 30, "train_size": None} for name in DATASETS}
#: --quick: 10 encoders (5 methods x 2 sizes, Adam, seed 0), 4 epochs, 20 levels; at most 1,000 training inputs.
QUICK = {"digits": {"epochs": 4, "train_size": None}, "mnist1d": {"epochs": 4, "train_size": 1000}}
QUICK["glyphs"] = QUICK["mnist1d"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; the grid's defaults are ``--dataset``'s, ``--quick`` replaces them by a small one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--dims", nargs="+", type=int, help="embedding sizes")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int, help="training inputs kept (default all of the seen classes')")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--probe-size", type=int, default=256, help="held-out probe of the seen classes")
    parser.add_argument("--levels", type=int, default=100, help="noise levels incl. the clean one (paper: 100)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (seed 0)")
    parser.add_argument("--workers", type=int, default=2, help="encoders trained in parallel, 1 thread each")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/correlation_study"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where generated data are kept")
    parser.add_argument(
        "--quick", action="store_true", help="small-grid defaults: d in {16, 64}, Adam, seed 0, 4 epochs, 20 levels"
    )
    first = parser.parse_args(argv)
    parser.set_defaults(**FULL[first.dataset])
    if first.quick:  # smaller defaults; explicit arguments still win
        parser.set_defaults(dims=[16, 64], optimizers=["adam"], seeds=[0], probe_size=128, levels=20)
        parser.set_defaults(**QUICK[first.dataset])
    return parser.parse_args(argv)


def load_data(settings: dict[str, object]) -> dict[str, torch.Tensor]:
    """The transfer split of the settings' data set: training inputs and probe (seen), fit and test (unseen)."""
    return transfer_split(
        str(settings["dataset"]), int(settings["probe_size"]), settings.get("train_size"), settings.get("cache_dir")
    )


def raw_input_accuracy(settings: dict[str, object]) -> float:
    """The downstream 1-NN accuracy on the raw inputs: the baseline no encoder is needed for."""
    data = load_data(settings)
    return knn_accuracy(data["fit_x"].flatten(1), data["fit_y"], data["test_x"].flatten(1), data["test_y"])


def scaled_max_std(settings: dict[str, object]) -> float:
    """The data-scaled noise's largest std: the probe's input std over MNIST's pixel std (0.3081)."""
    return float(load_data(settings)["probe_x"].double().std()) / MNIST_PIXEL_STD


def train_encoder(job: dict[str, object], settings: dict[str, object]) -> tuple[EncoderModule, pl.Trainer]:
    """Train one encoder of the grid on the seen classes; the same job and settings give the same weights."""
    data = load_data(settings)
    pl.seed_everything(int(job["seed"]), verbose=False)
    method, optimizer = str(job["method"]), str(job["optimizer"])
    seen = len(get_dataset(str(settings["dataset"])).seen)
    model = EncoderModule(
        method, int(job["embedding_dim"]), optimizer, LEARNING_RATES[optimizer], seen, dataset=settings["dataset"]
    )
    loader = DataLoader(
        TensorDataset(data["train_x"], data["train_y"]), batch_size=int(settings["batch_size"]), shuffle=True
    )
    trainer = quiet_trainer(int(settings["epochs"]), loader)
    trainer.fit(model, loader)
    return model, trainer


def downstream_accuracy(model: EncoderModule, settings: dict[str, object]) -> float:
    """The downstream score: 1-NN (cosine) accuracy on the unseen classes, fitted on one half, tested on the other."""
    data = load_data(settings)
    return knn_accuracy(embed(model, data["fit_x"]), data["fit_y"], embed(model, data["test_x"]), data["test_y"])


def rmqm_columns(model: EncoderModule, probe: torch.Tensor, noise: GaussianNoise, suffix: str = "") -> dict:
    """RMQM, its components and standard errors, 1/D_RC and 1/P_RC under ``noise`` (NaN where not finite)."""
    try:
        rmqm = {key: float(value) for key, value in score(model, probe, noise).items()}
    except ValueError:  # non-finite representations
        rmqm = {}
    keys = ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se")
    out = {f"{key}{suffix}": rmqm.get(key, math.nan) for key in keys}
    out[f"inv_D_RC{suffix}"] = 1.0 / out[f"D_RC{suffix}"]
    out[f"inv_P_RC{suffix}"] = 1.0 / out[f"P_RC{suffix}"]
    return out


def spectral_columns(probe_z: torch.Tensor) -> dict[str, float]:
    """RankMe and alpha-ReQ of the clean representations, uncentred and centred (minus their mean)."""
    centred = probe_z - probe_z.mean(dim=0, keepdim=True)
    alpha, alpha_centred = safe_score(alpha_req, probe_z), safe_score(alpha_req, centred)
    return {
        "rankme": safe_score(rankme, probe_z),
        "alpha_req": alpha,
        "neg_alpha_req_distance": -abs(alpha - 1.0),
        "rankme_centred": safe_score(rankme, centred),
        "alpha_req_centred": alpha_centred,
        "neg_alpha_req_centred_distance": -abs(alpha_centred - 1.0),
    }


def train_and_score(job: dict[str, object], settings: dict[str, object]) -> dict[str, object]:
    """Train one encoder of the grid and measure all its scores, its collapse and its downstream accuracy."""
    start = time.perf_counter()
    model, trainer = train_encoder(job, settings)
    data = load_data(settings)
    levels = int(settings["levels"])
    paper = rmqm_columns(model, data["probe_x"], GaussianNoise(levels=levels))
    scaled = rmqm_columns(
        model, data["probe_x"], GaussianNoise(levels=levels, max_std=scaled_max_std(settings)), "_scaled"
    )
    probe_z = embed(model, data["probe_x"])
    spectral = spectral_columns(probe_z)
    seen_accuracy = knn_accuracy(embed(model, data["train_x"]), data["train_y"], probe_z, data["probe_y"])
    chance = 1.0 / len(get_dataset(str(settings["dataset"])).seen)
    finite = bool(torch.isfinite(probe_z).all())
    row = {
        **job,
        "epochs": settings["epochs"],
        "train_loss": float(trainer.callback_metrics["train_loss"]),
        **paper,
        **{key: spectral[key] for key in ("rankme", "alpha_req", "neg_alpha_req_distance")},
        "seen_knn_accuracy": seen_accuracy,
        "knn_accuracy": downstream_accuracy(model, settings),
        "seconds": math.nan,  # below
        **scaled,
        **{key: spectral[key] for key in ("rankme_centred", "alpha_req_centred", "neg_alpha_req_centred_distance")},
        "collapsed": int(not (finite and seen_accuracy >= chance + COLLAPSE_MARGIN)),
    }
    row["seconds"] = time.perf_counter() - start
    return row


def main(argv: list[str] | None = None) -> None:
    """Train and score the grid, then write the CSV, the correlation tables and the regression plot."""
    start = time.perf_counter()
    args = parse_args(argv)
    jobs = grid(args, "correlations")
    settings = {k: getattr(args, k) for k in ("dataset", "epochs", "batch_size", "probe_size", "levels", "train_size")}
    settings["cache_dir"] = args.cache_dir
    load_data(settings)  # make and cache a generated data set once, before the workers read it
    print(f"Training and scoring {len(jobs)} {args.dataset} encoders with {args.workers} worker(s) ...", flush=True)
    rows = run_grid(jobs, settings, args.workers, train_and_score)
    context = {
        "raw_accuracy": raw_input_accuracy(settings),
        "max_std": scaled_max_std(settings),
        "mnist_std": MNIST_PIXEL_STD,
        "margin": COLLAPSE_MARGIN,
        "train_inputs": len(load_data(settings)["train_x"]),
        "wall_seconds": time.perf_counter() - start,
    }
    text, names = write_outputs(rows, args, context)
    print("\n" + text)
    print(f"Wrote {args.output_dir}/{', '.join(names)}")
    print(f"Total {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
