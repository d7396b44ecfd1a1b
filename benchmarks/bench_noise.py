"""Noise: ``score()`` against the floor of its bare forward passes, and against the naive pipeline.

For each encoder and probe size N, with ``GaussianNoise()`` (100 levels), the same instances
reused across evaluations as the callback reuses its alterations across epochs:

* ``score (default cache)``: ``rmqm_callback.score(model, probe, GaussianNoise(), batch_size=B)``,
  everything included, in evaluations after the first: the altered inputs that fit the default
  ``cache_mib`` (256 MiB) are reused, the rest drawn again (on a helper thread where torch's
  threads leave a core idle);
* ``score (all kept)``: the same with a ``cache_mib`` that keeps every altered input;
* ``score (no cache)``: the same with ``cache_mib=0``: every evaluation draws all its noise;
* ``floor``: the bare batched forward passes of the same N x 100 altered inputs, precomputed in
  the order ``score()`` makes them (same batches), under ``torch.inference_mode``;
* ``noise``: generating those altered inputs alone (``GaussianNoise.alter`` + batching);
* ``naive``: :mod:`naive_baseline` (a pass over the probe per level, ``(N, L, d)`` kept, ``cdist``).

The floor is timed twice per round, before and after the ``score()`` variants. The first
evaluation, which fills the caches, is timed once, apart. Printed: the caches' memory, median times
and ratios to the floor, the same ratios taken within each round (against the mean of that round's
two floors), the wall time one ``score()`` call spends outside the model's forward calls, our
speed-up over the naive pipeline, probe throughput against the model's own inference throughput,
and the RMQM difference between ``score()`` and the naive pipeline (all ``score()`` variants are
checked bit-identical).

    python benchmarks/bench_noise.py [--quick] [--device cuda] [--threads 2] [--repeats 3] [--only lenet:1000]
"""

from __future__ import annotations

import statistics

import torch
from _harness import (
    ForwardClock,
    bracketing_floors,
    interleaved_rounds,
    load_average,
    paired_ratios,
    parser,
    setup,
    table,
    timed_once,
)
from _models import make_model, make_probe
from naive_baseline import naive_score

from rmqm_callback import GaussianNoise, score

FULL = {"lenet": [(1000, 10), (5000, 4)], "resnet": [(250, 4)]}  # (N, repeats); scaled to fit a shared 2-core CPU
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


def within_call(model: torch.nn.Module, run, device: torch.device, calls: int = 3) -> tuple[float, float]:
    """Median over ``calls`` of one ``score()`` call's wall time outside the model's forward calls, and of its
    total wall time over the time inside them (the guest pass's forward calls count as inside)."""
    outside, ratio = [], []
    for _ in range(calls):
        with ForwardClock(model, device if device.type == "cuda" else None) as clock:
            total, _ = timed_once(run, device)
        outside.append(total - clock.inside)
        ratio.append(total / clock.inside)
    return statistics.median(outside), statistics.median(ratio)


def fits_all_mib(probe: torch.Tensor, levels: int) -> float:
    """A ``cache_mib`` that keeps every altered input of ``probe`` (and the clean blocks), with slack."""
    return 1.25 * len(probe) * levels * probe[0].numel() * probe.element_size() / 2**20 + 32


def run_case(name: str, n: int, repeats: int, batch_size: int, device: torch.device) -> dict:
    model, probe = make_model(name, device), make_probe(name, n)
    noise = GaussianNoise()  # the default: cache_mib = 256
    kept_all = GaussianNoise(cache_mib=fits_all_mib(probe, 100))
    fresh = GaussianNoise(cache_mib=0)  # today's path without a cache (helper thread where a core is idle)
    bare = GaussianNoise(cache_mib=0)  # for the floor, the noise generation and the naive pipeline
    inputs_of = lambda a, b: probe[a:b]  # noqa: E731
    # warm-up on one block (allocator, kernels, thread pool), not timed
    score(model, probe[:batch_size], bare, batch_size=batch_size, device=device)
    naive_score(model, inputs_of, min(n, batch_size), GaussianNoise(levels=5, cache_mib=0), batch_size, device)
    outputs: dict = {}
    batch = batch_size
    # the first evaluation of a run fills the caches: timed once, apart
    first_run = lambda: score(model, probe, noise, batch_size=batch, device=device)  # noqa: E731
    first_default, outputs["first"] = timed_once(first_run, device)
    first_all, _ = timed_once(lambda: score(model, probe, kept_all, batch_size=batch, device=device), device)

    batches = altered_batches(probe, bare, batch_size, device)
    forward_all(model, batches[:4])
    # the floor brackets the score() variants in every round (timed before and after them): the paired ratios
    # divide by the mean of the two, which takes out a drift of the machine's speed across the round
    walls, cpus = interleaved_rounds(
        {
            "floor": lambda: forward_all(model, batches),
            "all": lambda: outputs.update(all=score(model, probe, kept_all, batch_size=batch, device=device)),
            "score": lambda: outputs.update(ours=score(model, probe, noise, batch_size=batch, device=device)),
            "fresh": lambda: outputs.update(fresh=score(model, probe, fresh, batch_size=batch, device=device)),
            "floor_after": lambda: forward_all(model, batches),
            "noise": lambda: altered_batches(probe, bare, batch_size, device),
            "naive": lambda: outputs.update(naive=naive_score(model, inputs_of, n, bare, batch, device)),
        },
        device,
        repeats,
    )
    batches.clear()
    median = statistics.median
    times, cpu = {k: median(v) for k, v in walls.items()}, {k: median(v) for k, v in cpus.items()}
    paired = {
        (kind, name): paired_ratios(rounds[name], bracketing_floors(rounds))
        for kind, rounds in (("wall", walls), ("cpu", cpus))
        for name in ("score", "all", "fresh")
    }
    within = {
        name: within_call(model, lambda kept=kept: score(model, probe, kept, batch_size=batch, device=device), device)
        for name, kept in (("score", noise), ("all", kept_all))
    }
    ours, naive = outputs["ours"], outputs["naive"]
    for other in ("all", "fresh", "first"):
        if any(not torch.equal(ours[key], outputs[other][key]) for key in ours):
            raise AssertionError(f"score() with the default cache and `{other}` disagree")
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
        "first": first_default,
        "first_all": first_all,
        "kept_mib": noise.cache_nbytes / 2**20,
        "kept_all_mib": kept_all.cache_nbytes / 2**20,
        "budget_all_mib": kept_all.cache_mib,
        "all_mib_needed": n * 99 * probe[0].numel() * 4 / 2**20,
        "rmqm": float(ours["RMQM"]),
        "diff": abs(float(ours["RMQM"]) - naive["RMQM"]),
        "peak_cuda": peak_cuda,
        "inputs": n * noise.levels,
        "paired": paired,
        "within": within,
    }


def _ratio_row(result: dict, times: dict) -> list:
    """One table row of ``result`` from ``times`` (its wall times, or its ``cpu`` times)."""
    return [
        result["model"],
        result["N"],
        result["repeats"],
        times["floor"],
        times["score"],
        times["score"] / times["floor"],
        times["all"],
        times["all"] / times["floor"],
        times["fresh"],
        times["fresh"] / times["floor"],
        times["noise"],
        times["naive"],
        times["naive"] / times["score"],
    ]


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument(
        "--only",
        action="append",
        metavar="MODEL:N",
        help="run only these cases of the plan (repeatable), e.g. lenet:1000",
    )
    args = arguments.parse_args()
    device = setup(args)
    plan = QUICK if args.quick else FULL
    wanted = None if args.only is None else set(args.only)
    if wanted is not None and not wanted <= {f"{name}:{n}" for name, sizes in plan.items() for n, _ in sizes}:
        raise SystemExit(f"--only {sorted(wanted)}: not in the plan {plan}")
    results = []
    for name, sizes in plan.items():
        for n, repeats in sizes:
            if wanted is not None and f"{name}:{n}" not in wanted:
                continue
            result = run_case(name, n, args.repeats or repeats, args.batch_size, device)
            results.append(result)
            done = f"# done {name} N={n}: score {result['score']:.2f}s, floor {result['floor']:.2f}s"
            print(done, flush=True)
    print(f"# load average at end: {load_average()}")
    print("\n## Memory of the cache (MiB) and the first evaluation, which fills it (wall s)\n")
    rows = [
        [r["model"], r["N"], 256.0, r["kept_mib"], r["all_mib_needed"], r["budget_all_mib"], r["kept_all_mib"],
         r["first"], r["first_all"]]
        for r in results
    ]  # fmt: skip
    print(table(["model", "N", "default budget", "kept (default)", "all altered inputs", "budget (all)",
                 "kept (all)", "first evaluation (default)", "first evaluation (all)"], rows))  # fmt: skip
    headers = [
        "model",
        "N",
        "reps",
        "floor (bare fwd)",
        "score (default cache)",
        "score/floor",
        "score (all kept)",
        "all kept/floor",
        "score (no cache)",
        "no cache/floor",
        "noise gen",
        "naive",
        "speed-up vs naive",
    ]
    print("\n## Noise, 100 levels, evaluations after the first: wall time (s, median; perf_counter) and ratios\n")
    print(table(headers, [_ratio_row(r, r) for r in results]))
    print("\n## Same runs, process CPU time (s, median; time.process_time): the fair comparison on a loaded CPU\n")
    print(table(headers, [_ratio_row(r, r["cpu"]) for r in results]))
    print(
        "\n## Same runs, ratios to the floor within each round (median [lower quartile, upper quartile] over rounds):"
        " the floor is the mean of its two timings in that round, before and after the score() variants\n"
    )
    rows = []
    for r in results:
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in (r["paired"][(kind, name)]
                 for kind in ("cpu", "wall") for name in ("score", "all", "fresh"))]  # fmt: skip
        rows.append([r["model"], r["N"], r["repeats"], *cells])
    kinds = [f"{kind} {name}/floor" for kind in ("CPU", "wall") for name in ("default", "all kept", "no cache")]
    print(table(["model", "N", "rounds", *kinds], rows))
    print(
        "\n## Within one score() call: wall time outside the model's forward calls (s) and total / inside"
        " (median of 3 calls; the guest pass's forward calls count as inside)\n"
    )
    rows = [
        [r["model"], r["N"], r["within"]["score"][0], r["within"]["score"][1], r["within"]["all"][0],
         r["within"]["all"][1], r["within"]["score"][0] / r["floor"]]
        for r in results
    ]  # fmt: skip
    print(table(["model", "N", "outside (default)", "total/inside (default)", "outside (all kept)",
                 "total/inside (all kept)", "outside (default) / floor"], rows))  # fmt: skip
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
