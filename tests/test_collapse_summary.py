"""``examples/collapse_summary.py``: the committed summary is what the script computes from the committed CSVs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_committed_summary_is_recomputed_from_the_recordings(tmp_path):
    output = tmp_path / "summary.md"
    script = EXAMPLES / "collapse_summary.py"
    subprocess.run([sys.executable, str(script), "--output", str(output)], check=True, capture_output=True)
    assert output.read_text() == (EXAMPLES / "results" / "collapse_runs_summary.md").read_text()
    assert "| triplet-supervised/adam-0.001/d64/s0 | healthy | 10 | 1.31 | 19.84 |" in output.read_text()
