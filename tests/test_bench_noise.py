"""The noise benchmarks' quick modes run: their tables, ratios and within-call shares are printed and sane."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--device", "cpu", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_kept_noise_benchmark_prints_bracketed_ratios_and_the_within_call_share():
    out = _run("bench_noise_kept.py", "--only", "lenet:200")
    row = next(line for line in out.splitlines() if line.startswith("| lenet | 200 | 2 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    for ratio_cell in cells[6:8]:  # CPU and wall: median [lower quartile, upper quartile]
        median, lower, upper = (float(x) for x in re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", ratio_cell).groups())
        assert 0.3 < lower <= median <= upper < 3
    within = float(cells[8])
    assert 1.0 < within < 2.0  # a call spends some time outside the forward passes, not most of it
    assert float(cells[4]) <= float(cells[3])  # kept within the budget
    assert "- lenet N=200: " in out  # every round's ratio
    assert "| resnet |" not in out  # --only ran one case


def test_the_noise_benchmark_prints_its_paired_ratios_and_within_call_table():
    out = _run("bench_noise.py", "--only", "lenet:200")
    assert "## Same runs, ratios to the floor within each round" in out
    assert "## Within one score() call" in out
    paired = out.split("## Same runs, ratios to the floor within each round", 1)[1]
    row = next(line for line in paired.splitlines() if line.startswith("| lenet | 200 |"))
    assert len(re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", row)) == 6
