"""Noise, everything kept: ``score()`` against its bare forward passes in many short bracketed rounds.

``bench_noise.py`` times six contenders per round, so its rounds last minutes at N = 5,000 and its
ratios move with the machine's speed between them. This script times only what the <= 1.05x target
is about: in every round the floor (the bare forward passes of the N x 100 altered inputs, in
``score()``'s batches), then ``score()`` with a ``GaussianNoise`` whose ``cache_mib`` keeps every altered
input (filled by a first, untimed evaluation), then the floor again; the round's ratio is the
``score()`` time over the mean of its two floors. Printed per case: the budget's memory, every
round's ratio (process CPU time and wall), their median and quartiles, and the within-call share
(``bench_noise.within_call``: the wall time of one call outside the model's forward calls).

    python benchmarks/bench_noise_kept.py --threads 2 [--repeats 12] [--only lenet:5000] [--quick]
"""

from __future__ import annotations

import statistics

import torch
from _harness import bracketing_floors, interleaved_rounds, load_average, paired_ratios, parser, setup, table
from _models import make_model, make_probe
from bench_noise import altered_batches, fits_all_mib, forward_all, within_call

from rmqm_callback import GaussianNoise, score

FULL = {"lenet": (1000, 5000), "resnet": (250,)}
QUICK = {"lenet": (200,), "resnet": (50,)}


def run_case(name: str, n: int, repeats: int, batch_size: int, device: torch.device) -> dict:
    model, probe = make_model(name, device), make_probe(name, n)
    kept = GaussianNoise(cache_mib=fits_all_mib(probe, 100))
    first = score(model, probe, kept, batch_size=batch_size, device=device)  # fills the cache, untimed
    batches = altered_batches(probe, GaussianNoise(cache_mib=0), batch_size, device)
    forward_all(model, batches[:4])
    results: list[dict] = []
    walls, cpus = interleaved_rounds(
        {
            "floor": lambda: forward_all(model, batches),
            "kept": lambda: results.append(score(model, probe, kept, batch_size=batch_size, device=device)),
            "floor_after": lambda: forward_all(model, batches),
        },
        device,
        repeats,
    )
    batches.clear()
    if any(not torch.equal(first[key], later[key]) for later in results for key in first):
        raise AssertionError("score() with kept altered inputs changed its result between evaluations")
    ratios = {}
    for kind, rounds in (("cpu", cpus), ("wall", walls)):
        floors = bracketing_floors(rounds)
        ratios[kind] = (
            [k / f for k, f in zip(rounds["kept"], floors, strict=True)],
            paired_ratios(rounds["kept"], floors),
        )
    run = lambda: score(model, probe, kept, batch_size=batch_size, device=device)  # noqa: E731
    return {
        "model": name,
        "N": n,
        "rounds": repeats,
        "budget_mib": kept.cache_mib,
        "kept_mib": kept.cache_nbytes / 2**20,
        "floor": statistics.median(walls["floor"] + walls["floor_after"]),
        "ratios": ratios,
        "within": within_call(model, run, device),
        "rmqm": float(first["RMQM"]),
    }


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--only", action="append", metavar="MODEL:N", help="run only these cases (repeatable)")
    args = arguments.parse_args()
    device = setup(args)
    plan = QUICK if args.quick else FULL
    repeats = args.repeats or (2 if args.quick else 12)
    results = []
    for name, sizes in plan.items():
        for n in sizes:
            if args.only is None or f"{name}:{n}" in args.only:
                results.append(run_case(name, n, repeats, args.batch_size, device))
                print(f"# done {name} N={n}", flush=True)
    print(f"# load average at end: {load_average()}")
    print("\n## score() with every altered input kept / the mean of the round's two floors\n")
    rows = []
    for r in results:
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in (r["ratios"][kind][1] for kind in ("cpu", "wall"))]
        rows.append([r["model"], r["N"], r["rounds"], r["budget_mib"], r["kept_mib"], r["floor"], *cells,
                     r["within"][1], f"{r['rmqm']:.8f}"])  # fmt: skip
    print(table(["model", "N", "rounds", "budget MiB", "kept MiB", "floor wall s (median)",
                 "CPU ratio: median [quartiles]", "wall ratio: median [quartiles]", "within one call: total / inside",
                 "RMQM"], rows))  # fmt: skip
    print("\n## Every round's ratio (process CPU time), in the order run\n")
    for r in results:
        print(f"- {r['model']} N={r['N']}: " + ", ".join(f"{x:.3f}" for x in r["ratios"]["cpu"][0]))


if __name__ == "__main__":
    main()
