"""``benchmarks/gpu_check.py`` runs on the CPU, so the script a lent GPU would run first cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_runs_on_the_cpu_and_passes_its_checks():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "| noise |" in out and "| pgd |" in out  # both score() paths ran and gave finite RMQM
    assert "noise probe throughput is" in out
    assert "bit-identical with and without the callback: True" in out
    assert "peak RSS" in out
    assert out.rstrip().endswith("all checks passed")
