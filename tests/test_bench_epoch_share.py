"""`benchmarks/bench_epoch_share.py --quick` runs and prints its share table: every row, shares positive, finite."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_epoch_share.py"
DATA = ["1x28x28 (MNIST-sized)", "3x32x32 (CIFAR-10-sized)", "3x224x224 (ImageNet-sized), scaled"]
SETTINGS = ["default:", "levels=10), 64 probes", "levels=10), 256 probes", "every_n_epochs=5"]


def _share_rows(out: str) -> list[list[str]]:
    """The cells of the share table's rows (the table after its '## One evaluation' heading)."""
    section = out.split("## One evaluation of the callback", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]  # the header left out
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _percent(cell: str) -> float:
    assert cell.endswith("%"), cell
    return float(cell[:-1])


def test_the_epoch_share_benchmark_prints_every_row_with_sane_shares():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--device", "cpu"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "# load average at start" in out and "torch threads:" in out  # the machine header
    rows = _share_rows(out)
    assert [(row[1], setting) for row in rows for setting in SETTINGS if setting in row[3]] == [
        (data, setting) for data in DATA for setting in SETTINGS
    ]
    shares = {}
    for row in rows:
        wall, cpu = _percent(row[8]), _percent(row[9])
        assert math.isfinite(wall) and wall > 0 and math.isfinite(cpu) and cpu > 0, row
        assert float(row[6].replace(",", "")) > 0 and float(row[7].replace(",", "")) > 0, row
        shares[row[1], next(s for s in SETTINGS if s in row[3])] = wall
    for data in DATA:  # every 5 epochs: a fifth of the default's share per epoch (2-decimal rounding)
        assert math.isclose(shares[data, "every_n_epochs=5"], shares[data, "default:"] / 5, abs_tol=0.011)
    # the ImageNet rows scale both costs alike: the share falls with the training set (50,000 -> 1,281,167)
    cifar, imagenet = shares[DATA[1], "default:"], shares[DATA[2], "default:"]
    assert math.isclose(imagenet, cifar * 50_000 / 1_281_167, rel_tol=0.02, abs_tol=0.011)
