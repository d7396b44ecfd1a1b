"""Callback overhead -- TODO, not written yet (the Lightning callback is still being written).

What it will measure: in ``examples/train_digits.py``'s default setting, the share of each epoch's
wall time spent on RMQM (the callback's probe scoring) against the rest of the epoch (training and
validation steps): run the same fit with and without ``RMQMCallback``, time the epochs with
``time.perf_counter`` (``torch.cuda.synchronize`` on a GPU), and print, per alteration,
``seconds of RMQM per epoch``, ``epoch seconds`` and their ratio, with the machine header of the
other benchmarks.

    python benchmarks/bench_callback.py [--quick]
"""

from __future__ import annotations

from _harness import parser, setup


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    setup(args)
    print("TODO: the callback benchmark is not written yet (RMQMCallback is in progress); nothing measured.")


if __name__ == "__main__":
    main()
