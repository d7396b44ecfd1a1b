"""Noise: ``score()`` against the floor of its bare forward passes, and against the naive pipeline.

For each encoder and probe size N, with ``GaussianNoise()`` (100 levels):

* ``score``: ``rmqm_callback.score(model, probe, batch_size=B)``, everything included (on a CPU
  where torch's threads leave a core idle, the next levels' noise is made on a helper thread);
* ``inline``: the same with ``noise.pure = False``: all noise made on the calling thread;
* ``floor``: the bare batched forward passes of the same N x 100 altered inputs, precomputed in
  the order ``score()`` makes them (same batches), under ``torch.inference_mode``;
* ``noise``: generating those altered inputs alone (``GaussianNoise.alter`` + batching);
* ``naive``: :mod:`naive_baseline` (a pass over the probe per level, ``(N, L, d)`` kept, ``cdist``).

Printed: median times, ``score / floor``, how much of the gap noise generation explains, our
speed-up over the naive pipeline, probe throughput against the model's own inference throughput,
and the RMQM difference between ``score()`` and the naive pipeline.

    python benchmarks/bench_noise.py [--quick] [--device cuda] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import torch
from _harness import interleaved, load_average, parser, setup, table
from _models import make_model, make_probe
from naive_baseline import naive_score

from rmqm_callback import GaussianNoise, score

FULL = {"lenet": [(1000, 3), (5000, 2)], "resnet": [(250, 2)]}  # (N, repeats); scaled to fit a shared 2-core CPU
QUICK = {"lenet": [(200, 2), (500, 2)], "resnet": [(100, 2)]}


def altered_batches(probe: torch.Tensor, noise: GaussianNoise, batch_size: int, device: torch.device) -> list:
    """The forward-pass inputs of ``score()`` in its order: per block, levels grouped up to ``batch_size``."""
    batches = []
    for start in range(0, len(probe), batch_size):
        inputs = probe[start : start + batch_size].to(device)
        indices = torch.arange(start, start + inputs.shape[0])
        group = max(1, batch_size // inputs.shape[0])
        for first in range(0, noise.levels, group):
            levels = range(first, min(first + group, noise.levels))
            batches.append(torch.cat([noise.alter(inputs, indices, level) for level in levels]))
    return batches


def forward_all(model: torch.nn.Module, batches: list) -> None:
    with torch.inference_mode():
        for batch in batches:
            model(batch)


def run_case(name: str, n: int, repeats: int, batch_size: int, device: torch.device) -> dict:
    model, probe, noise = make_model(name, device), make_probe(name, n), GaussianNoise()
    inline = GaussianNoise()
    inline.pure = False  # never made ahead on a helper thread
    inputs_of = lambda a, b: probe[a:b]  # noqa: E731
    # warm-up on one block (allocator, kernels, thread pool), not timed
    score(model, probe[:batch_size], noise, batch_size=batch_size, device=device)
    naive_score(model, inputs_of, min(n, batch_size), GaussianNoise(levels=5), batch_size, device)

    batches = altered_batches(probe, noise, batch_size, device)
    forward_all(model, batches[:4])
    outputs: dict = {}
    batch = batch_size
    times, cpu = interleaved(
        {
            "noise": lambda: altered_batches(probe, noise, batch_size, device),
            "floor": lambda: forward_all(model, batches),
            "score": lambda: outputs.update(ours=score(model, probe, noise, batch_size=batch, device=device)),
            "inline": lambda: outputs.update(inline=score(model, probe, inline, batch_size=batch, device=device)),
            "naive": lambda: outputs.update(naive=naive_score(model, inputs_of, n, noise, batch, device)),
        },
        device,
        repeats,
    )
    batches.clear()
    ours, naive = outputs["ours"], outputs["naive"]
    if not torch.equal(ours["RMQM"], outputs["inline"]["RMQM"]):
        raise AssertionError("score() with and without the helper thread disagree")
    peak_cuda = float("nan")
    if device.type == "cuda":  # peak of one score() call above what is already allocated
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        score(model, probe, noise, batch_size=batch_size, device=device)
        peak_cuda = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return {
        "model": name,
        "N": n,
        "repeats": repeats,
        **times,
        "cpu": cpu,
        "rmqm": float(ours["RMQM"]),
        "diff": abs(float(ours["RMQM"]) - naive["RMQM"]),
        "peak_cuda": peak_cuda,
        "inputs": n * noise.levels,
    }


def _ratio_row(result: dict, times: dict) -> list:
    """One table row of ``result`` from ``times`` (its wall times, or its ``cpu`` times)."""
    gap = times["inline"] - times["floor"]
    return [
        result["model"],
        result["N"],
        result["repeats"],
        times["score"],
        times["floor"],
        times["score"] / times["floor"],
        times["inline"],
        times["inline"] / times["floor"],
        times["noise"],
        f"{100 * times['noise'] / gap:.0f}%" if gap > 0 else "-",
        times["naive"],
        times["naive"] / times["score"],
    ]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    device = setup(args)
    plan = QUICK if args.quick else FULL
    results = []
    for name, sizes in plan.items():
        for n, repeats in sizes:
            result = run_case(name, n, args.repeats or repeats, args.batch_size, device)
            results.append(result)
            done = f"# done {name} N={n}: score {result['score']:.2f}s, floor {result['floor']:.2f}s"
            print(done, flush=True)
    print(f"# load average at end: {load_average()}")
    print("\n## Noise, 100 levels: wall time (s, median; perf_counter) and ratios\n")
    headers = [
        "model",
        "N",
        "reps",
        "score",
        "floor (bare fwd)",
        "score/floor",
        "inline",
        "inline/floor",
        "noise gen",
        "noise gen / (inline-floor)",
        "naive",
        "speed-up vs naive",
    ]
    print(table(headers, [_ratio_row(r, r) for r in results]))
    print("\n## Same runs, process CPU time (s, median; time.process_time): the fair comparison on a loaded CPU\n")
    print(table(headers, [_ratio_row(r, r["cpu"]) for r in results]))
    print("\n## Throughput (altered inputs per second) and agreement with the naive pipeline\n")
    rows = [
        [
            r["model"],
            r["N"],
            r["inputs"] / r["score"],
            r["inputs"] / r["floor"],
            f"{100 * r['floor'] / r['score']:.1f}%",
            f"{r['rmqm']:.8f}",
            f"{r['diff']:.1e}",
        ]
        + ([f"{r['peak_cuda']:.0f}"] if device.type == "cuda" else [])
        for r in results
    ]
    headers = [
        "model",
        "N",
        "score inputs/s",
        "model inference inputs/s",
        "score / inference",
        "RMQM (score)",
        "|RMQM score - naive|",
    ]
    print(table(headers + (["score peak CUDA MiB"] if device.type == "cuda" else []), rows))


if __name__ == "__main__":
    main()
