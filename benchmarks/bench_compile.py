"""What a ``torch.compile``d model costs during an evaluation: it runs eagerly there, so an eager model's time.

The callback (and ``score``) evaluate under ``torch.compiler.set_stance("force_eager")``: compiling for
the probe's shapes and eval mode would recompile the training graph with dynamic shapes. So an
evaluation of a compiled model takes what the same model takes uncompiled, and gives up whatever
speed-up compilation brings to inference. This times one noise evaluation of the eager and the
compiled model (the same numbers, checked), and the compiled model's own inference against eager
inference, on the benchmark models.

python benchmarks/bench_compile.py [--quick] [--device cuda] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import torch
from _harness import interleaved, parser, setup, table, timeit
from _models import make_model, make_probe

from rmqm_callback import GaussianNoise, score


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    device = setup(args)
    levels = 10 if args.quick else 100
    repeats = args.repeats or (1 if args.quick else 3)
    rows = []
    for name, n in (("lenet", 64 if args.quick else 1000), ("resnet", 32 if args.quick else 250)):
        eager = make_model(name, device)
        compiled = torch.compile(eager)
        probe = make_probe(name, n).to(device)
        noise = GaussianNoise(levels=levels)
        same = score(compiled, probe, noise, batch_size=args.batch_size)["RMQM"] == score(eager, probe, noise)["RMQM"]
        walls, _ = interleaved(
            {
                "eager": lambda m=eager, p=probe, a=noise: score(m, p, a, batch_size=args.batch_size),
                "compiled": lambda m=compiled, p=probe, a=noise: score(m, p, a, batch_size=args.batch_size),
            },
            device,
            repeats,
        )
        batch = probe[: args.batch_size]
        with torch.inference_mode():
            eager_forward = timeit(lambda m=eager, b=batch: m(b), device, repeats=10 * repeats, warmup=3)
            compiled_forward = timeit(lambda m=compiled, b=batch: m(b), device, repeats=10 * repeats, warmup=3)
        rows.append([
            name, n, levels, walls["eager"], walls["compiled"], walls["compiled"] / walls["eager"], bool(same),
            eager_forward * 1e3, compiled_forward * 1e3, eager_forward / compiled_forward,
        ])
    print(table(
        ["model", "N", "levels", "score eager s", "score compiled s", "compiled / eager", "same RMQM",
         "forward eager ms", "forward compiled ms", "compile speed-up of inference"],
        rows,
    ))


if __name__ == "__main__":
    main()
