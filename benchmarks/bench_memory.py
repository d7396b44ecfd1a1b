"""Memory: peak resident memory of ``score()`` against the naive pipeline, for growing N and levels.

Every measurement runs in a fresh subprocess and reads its own ``ru_maxrss`` at the end. The
probe is a ``Dataset`` that generates each item from its index when read
(:class:`_models.SyntheticImages`), so the probe itself is never in memory; the naive pipeline
reads the same dataset once per level. ``baseline`` is the same process after importing, building
the model and scoring one block with 3 levels: ``score() - baseline`` is what the probe size and
the number of levels cost. The naive pipeline keeps ``N x L x d`` float32 representations and an
``N x L x L`` distance matrix (both printed as the expected growth).

The encoder is an MLP with d = 128 on 1x28x28 inputs (``--model lenet`` for LeNet-5): memory
depends on ``d`` and the batch size, not on the encoder's cost, and the cheap one lets N = 20,000
x 100 levels run in a minute or two on 2 CPU cores. On CUDA the child also reports
``torch.cuda.max_memory_allocated``.

    python benchmarks/bench_memory.py [--quick] [--device cuda] [--model mlp]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch
from _harness import load_average, parser, setup, table
from _models import MODELS, SyntheticImages, make_model
from naive_baseline import naive_score

from rmqm_callback import GaussianNoise, score

FULL = {"N": [1000, 5000, 20000], "levels": [30, 100], "naive_N": [1000, 5000, 20000]}
QUICK = {"N": [256, 1024], "levels": [10, 30], "naive_N": [256, 1024]}


def child(args) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = make_model(args.model, device)
    dataset = SyntheticImages(args.n, MODELS[args.model].input_shape)
    noise = GaussianNoise(levels=args.levels)
    start = time.perf_counter()
    if args.child == "score":
        result = float(score(model, dataset, noise, batch_size=args.batch_size, device=device)["RMQM"])
    elif args.child == "naive":
        result = naive_score(model, dataset.batch, args.n, noise, args.batch_size, device)["RMQM"]
    else:  # baseline: imports, model, one block of 3 levels
        small = SyntheticImages(args.batch_size, MODELS[args.model].input_shape)
        result = float(score(model, small, GaussianNoise(levels=3), batch_size=args.batch_size, device=device)["RMQM"])
    seconds = time.perf_counter() - start
    peak_cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rss_mib": rss, "cuda_mib": peak_cuda, "seconds": seconds, "rmqm": result}))


def measure(args, kind: str, n: int, levels: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--n",
        str(n),
        "--levels",
        str(levels),
        "--model",
        args.model,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", default="mlp", choices=sorted(MODELS))
    arguments.add_argument("--child", choices=["score", "naive", "baseline"], help=argparse_hidden())
    arguments.add_argument("--n", type=int, default=0, help=argparse_hidden())
    arguments.add_argument("--levels", type=int, default=0, help=argparse_hidden())
    args = arguments.parse_args()
    if args.child:
        child(args)
        return
    device = setup(args)
    print(f"# encoder: {args.model}, d = 128; each row is a fresh subprocess")
    plan = QUICK if args.quick else FULL
    base = measure(args, "baseline", args.batch_size, 3)
    cuda = device.type == "cuda"
    rows = [
        ["baseline", args.batch_size, 3, base["rss_mib"], 0.0, "-", "-", base["seconds"]]
        + ([base["cuda_mib"]] if cuda else [])
    ]
    for kind, sizes in (("score", plan["N"]), ("naive", plan["naive_N"])):
        for levels in plan["levels"]:
            for n in sizes:
                result = measure(args, kind, n, levels)
                expected = n * levels * 128 * 4 / 2**20
                rows.append(
                    [
                        kind,
                        n,
                        levels,
                        result["rss_mib"],
                        result["rss_mib"] - base["rss_mib"],
                        f"{expected:.0f}",
                        f"{n * levels * levels * 4 / 2**20:.0f}",
                        result["seconds"],
                    ]
                    + ([result["cuda_mib"]] if cuda else [])
                )
                print(f"# done {kind} N={n} L={levels}: {result['rss_mib']:.0f} MiB", flush=True)
    print(f"# load average at end: {load_average()}")
    print("\n## Peak resident memory (MiB)\n")
    headers = [
        "pipeline",
        "N",
        "levels",
        "peak RSS",
        "peak RSS - baseline",
        "N*L*d*4 bytes",
        "N*L*L*4 bytes",
        "seconds",
    ]
    print(table(headers + (["peak CUDA MiB"] if cuda else []), rows))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
