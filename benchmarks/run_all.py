"""Run every benchmark in turn, each in its own process, passing the same options through.

python benchmarks/run_all.py [--quick] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = [
    "bench_noise.py",
    "bench_noise_kept.py",
    "bench_pgd.py",
    "bench_memory.py",
    "bench_callback.py",
    "bench_signals.py",
    "bench_knn.py",
    "bench_compile.py",
    "bench_epoch_share.py",
    "gpu_check.py",
]


def main() -> None:
    here = Path(__file__).resolve().parent
    failed = []
    for script in SCRIPTS:
        print(f"\n===== {script} {' '.join(sys.argv[1:])}\n", flush=True)
        if subprocess.run([sys.executable, str(here / script), *sys.argv[1:]], check=False).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
