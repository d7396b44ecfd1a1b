"""The collapse recordings and their replays are what the committed scripts make.

``collapse_explore.py`` records runs epoch by epoch; ``collapse_alarm.py simulate`` replays them
through real ``EarlyStopping`` objects. The README and the collapse-alarm guide quote the committed
replay reports, so each is recomputed here from its committed CSV, and a short recording (two runs of
the digits, one epoch) is made anew and compared with the committed recording of the same runs.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RESULTS = EXAMPLES / "results"

#: Each committed replay report and the ``collapse_alarm.py simulate`` options that made it.
REPLAYS = {
    "collapse_alarm_simulation.md": [],
    "collapse_alarm_simulation_T4.md": ["--rankme-threshold", "4"],
    **{f"collapse_alarm_simulation_package_{name}.md": ["--dataset", name, "--no-rankme"]
       for name in ("digits", "mnist1d", "glyphs")},
    **{f"collapse_alarm_simulation_package_{name}_rerun.md":
       ["--no-rankme", str(RESULTS / f"collapse_runs_{name}_rerun.csv")] for name in ("digits", "mnist1d", "glyphs")},
}  # fmt: skip
#: Columns collapse_explore.py records that the recordings made before them lack.
ADDED_LATER = ("unit_spread",)
HEALTHY, DIVERGED = "cross-entropy/adam-0.001/d64/s0", "cross-entropy/sgd-1/d64/s0"


def _run(script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("report", list(REPLAYS))
def test_the_committed_replay_is_recomputed_from_the_committed_recording(report, tmp_path):
    _run("collapse_alarm.py", "simulate", *REPLAYS[report], "--output", str(tmp_path / report))
    assert (tmp_path / report).read_text() == (RESULTS / report).read_text()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two digits runs, one epoch each, recorded anew: a healthy run and one whose weights go to NaN."""
    folder = tmp_path_factory.mktemp("recording")
    output = folder / "runs.csv"
    _run(
        "collapse_explore.py", "--dataset", "digits", "--epochs", "1", "--workers", "1",
        "--groups", "healthy", "divergence", "--only", HEALTHY, DIVERGED,
        "--output", str(output), "--cache-dir", str(folder / "cache"),
    )  # fmt: skip
    return output


def _rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(row["run"], row["epoch"]): row for row in csv.DictReader(path.open())}


def test_a_recording_made_anew_has_the_committed_columns_and_values(recording):
    header = next(csv.reader(recording.open()))
    for name in ("digits_centred", "mnist1d", "glyphs"):
        older = [column for column in header if column not in ADDED_LATER]
        assert next(csv.reader((RESULTS / f"collapse_runs_{name}.csv").open())) == older
    for name in ("digits", "mnist1d", "glyphs"):
        assert next(csv.reader((RESULTS / f"collapse_runs_{name}_rerun.csv").open())) == header
    new = _rows(recording)
    assert set(new) == {(HEALTHY, "0"), (HEALTHY, "1"), (DIVERGED, "0"), (DIVERGED, "1")}
    compared = ("rankme", "rankme_centred", "alpha_req", "mean_norm", "L100_RMQM", "L100_D", "train_loss")
    for recorded, columns in (("digits_centred", compared), ("digits_rerun", (*compared, *ADDED_LATER))):
        committed = _rows(RESULTS / f"collapse_runs_{recorded}.csv")
        for key, row in new.items():
            for column in columns:
                value, expected = float(row[column]), float(committed[key][column])
                assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, rel=1e-4), (
                    recorded, key, column, value, expected
                )  # fmt: skip
            assert float(row["knn_accuracy"]) == pytest.approx(float(committed[key]["knn_accuracy"]), abs=0.004) or (
                math.isnan(float(row["knn_accuracy"])) and math.isnan(float(committed[key]["knn_accuracy"]))
            )
    assert float(new[DIVERGED, "1"]["L100_nonfinite_share"]) == 1.0
    assert math.isnan(float(new[DIVERGED, "1"]["unit_spread"])) and 0 < float(new[HEALTHY, "1"]["unit_spread"]) < 1


def test_the_package_alarm_replayed_on_it_stops_the_divergence_only(recording):
    out = _run("collapse_alarm.py", "simulate", "--no-rankme", str(recording))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if line.startswith("| cross-entropy/")}
    assert " | healthy | 3 / 3 | never | never |" in rows[HEALTHY]
    assert " | divergence | 3 / 3 | 1 (non_finite=1, " in rows[DIVERGED]
