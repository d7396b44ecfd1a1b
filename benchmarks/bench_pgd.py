"""PGD, 30 levels: ``score()`` against its floor of 29 bare gradient steps, and against re-running the attack.

* ``score``: ``rmqm_callback.score(model, probe, PGD(), batch_size=B)``;
* ``floor``: 29 bare forward + input-gradient steps per block (the same loss, sign step, projection
  and clip, no representation kept and no metric) from the same inputs;
* ``re-run``: the released pipeline's way, the attack re-run from scratch for every level
  (0 + 1 + ... + 29 = 435 gradient steps and 30 forward passes per block); timed on ``--rerun-n``
  probes and scaled linearly to N (blocks are independent, so time is linear in the number of blocks).

The bare loop's last iterate is checked against the package's (they must be identical).

    python benchmarks/bench_pgd.py [--quick] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import torch
from _harness import interleaved, load_average, parser, setup, table
from _models import make_model, make_probe

from rmqm_callback import PGD, score
from rmqm_callback.alterations.pgd import contrastive_loss

FULL = {"lenet": (1000, 3), "resnet": (64, 2)}  # (N, repeats); ResNet scaled down for 2 CPU cores
QUICK = {"lenet": (256, 2), "resnet": (64, 1)}


def bare_attack(model: torch.nn.Module, inputs: torch.Tensor, steps: int, attack: PGD) -> torch.Tensor:
    """``steps`` bare PGD steps from ``inputs`` (the package's update rule, without its machinery)."""
    with torch.no_grad():
        clean = model(inputs)
    current = inputs
    for _ in range(steps):
        attacked = current.detach().requires_grad_(True)
        loss = contrastive_loss(model(attacked), clean, attack.temperature)
        (gradient,) = torch.autograd.grad(loss, attacked)
        with torch.no_grad():
            step = current + attack.step_size * gradient.sign()
            current = (inputs + (step - inputs).clamp(-attack.radius, attack.radius)).clamp(*attack.clip)
    return current


def floor_steps(model: torch.nn.Module, probe: torch.Tensor, batch_size: int, attack: PGD, device) -> None:
    for start in range(0, len(probe), batch_size):
        bare_attack(model, probe[start : start + batch_size].to(device), attack.levels - 1, attack)


def rerun_from_scratch(model: torch.nn.Module, probe: torch.Tensor, batch_size: int, attack: PGD, device) -> None:
    for start in range(0, len(probe), batch_size):
        inputs = probe[start : start + batch_size].to(device)
        for level in range(attack.levels):
            final = bare_attack(model, inputs, level, attack)
            with torch.no_grad():
                model(final)


def check_same_iterates(model, probe, batch_size, attack, device) -> float:
    """Max |bare last iterate - package last iterate| on the first block (must be 0)."""
    from rmqm_callback.evaluation.encoder import Encoder
    from rmqm_callback.evaluation.probe import Probe

    batch = next(Probe(probe[:batch_size]).blocks(batch_size)).to(device)
    *_, (last, _) = attack.iterates(batch, Encoder(model))
    bare = bare_attack(model, batch.inputs, attack.levels - 1, attack)
    return float((last - bare).abs().max())


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    args_extra = {"rerun_n": 64 if args.quick else args.batch_size}
    device = setup(args)
    plan = QUICK if args.quick else FULL
    attack = PGD()  # 30 levels
    rows = []
    for name, (n, repeats) in plan.items():
        repeats = args.repeats or repeats
        model, probe = make_model(name, device), make_probe(name, n)
        rerun_probe = probe[: min(n, args_extra["rerun_n"])]
        b = args.batch_size
        score(model, probe[:b], attack, batch_size=b, device=device)  # warm-up
        floor_steps(model, probe[:b], b, attack, device)
        difference = check_same_iterates(model, probe, b, attack, device)
        times, cpu = interleaved(
            {
                "score": lambda: score(model, probe, attack, batch_size=b, device=device),  # noqa: B023
                "floor": lambda: floor_steps(model, probe, b, attack, device),  # noqa: B023
            },
            device,
            repeats,
        )
        rerun_wall, rerun_cpu = interleaved(
            {"rerun": lambda: rerun_from_scratch(model, rerun_probe, b, attack, device)},  # noqa: B023
            device,
            1,
        )
        scale = n / len(rerun_probe)
        rerun, rerun_c = rerun_wall["rerun"] * scale, rerun_cpu["rerun"] * scale
        rows.append(
            [
                name,
                n,
                repeats,
                times["score"],
                times["floor"],
                times["score"] / times["floor"],
                f"{rerun:.1f} (N={len(rerun_probe)}, scaled)" if len(rerun_probe) < n else f"{rerun:.1f}",
                rerun / times["score"],
                cpu["score"],
                cpu["floor"],
                cpu["score"] / cpu["floor"],
                rerun_c,
                rerun_c / cpu["score"],
                f"{difference:.1e}",
            ]
        )
        print(f"# done {name} N={n}", flush=True)
    print(f"# load average at end: {load_average()}")
    print("\n## PGD, 30 levels: wall time and process CPU time (s, median) and ratios\n")
    print(
        table(
            [
                "model",
                "N",
                "reps",
                "score",
                "floor (29 bare grad steps)",
                "score/floor",
                "re-run from scratch (435 steps)",
                "speed-up vs re-run",
                "CPU: score",
                "CPU: floor",
                "CPU: score/floor",
                "CPU: re-run",
                "CPU: speed-up vs re-run",
                "|bare - package| last iterate",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
