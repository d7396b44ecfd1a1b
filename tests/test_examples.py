"""The example scripts, run as a user runs them: in a subprocess, from a fresh working directory."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import score_checkpoints  # noqa: E402
import train_digits  # noqa: E402

TABLE_ROW = re.compile(r"^\s*(\d+) \|\s+(\S+) \|\s+(\S+) \|\s+(\S+) \|\s+(\S+) \|\s+(\S+) \|\s+(\S+)$")
EPOCHS = 3


def run_example(script: str, *args: str, cwd: Path, timeout: float = 240) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} failed:\nSTDOUT:\n{done.stdout}\nSTDERR:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny train_digits.py run (keeping every checkpoint), shared by the tests below."""
    cwd = tmp_path_factory.mktemp("train_digits")
    args = ("--quick", "--epochs", str(EPOCHS), "--save-top-k", "2")
    return cwd, run_example("train_digits.py", *args, cwd=cwd)


def test_train_digits_prints_one_row_per_epoch(trained):
    _, out = trained
    rows = [TABLE_ROW.match(line) for line in out.splitlines()]
    rows = [row for row in rows if row]
    assert [int(row.group(1)) for row in rows] == list(range(EPOCHS))
    for row in rows:
        loss, d, d_rc, p_rc, rmqm, seconds = (float(row.group(i)) for i in range(2, 8))
        assert math.isfinite(loss)
        assert d > 0 and d_rc > 0 and p_rc > 0 and seconds >= 0
        assert rmqm == pytest.approx(math.log(1 + d + 1 / d_rc + 1 / p_rc), abs=5e-3)  # eq. 4, rounded inputs
    assert "epoch | train loss |       D |    D_RC |    P_RC |    RMQM | RMQM s" in out
    assert "tensorboard --logdir lightning_logs" in out


def test_train_digits_writes_tensorboard_logs_and_best_checkpoint(trained):
    cwd, out = trained
    run_dir = cwd / "lightning_logs" / "nt-xent" / "version_0"
    assert list(run_dir.glob("events.out.tfevents.*"))
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch*.ckpt"))
    assert len(checkpoints) == 2 and (run_dir / "checkpoints" / "last.ckpt").is_file()  # the top 2, and the last
    assert "Last checkpoint:   lightning_logs/nt-xent/version_0/checkpoints/last.ckpt" in out
    best = re.search(r"Highest RMQM:\s+(\S+) \(rmqm/noise/RMQM = ([\d.]+); an early epoch", out)
    assert best, out
    assert (cwd / best.group(1)).is_file()
    # the best checkpoint carries the highest RMQM of the table
    rmqms = [float(m.group(6)) for m in map(TABLE_ROW.match, out.splitlines()) if m]
    assert float(best.group(2)) == pytest.approx(max(rmqms), abs=1e-4)


def test_train_digits_tensorboard_has_the_rmqm_scalars(trained):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cwd, _ = trained
    accumulator = event_accumulator.EventAccumulator(str(cwd / "lightning_logs" / "nt-xent" / "version_0"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for key in ("rmqm/noise/RMQM", "rmqm/noise/D", "rmqm/noise/D_RC", "rmqm/noise/P_RC", "rmqm/noise/seconds"):
        assert key in tags
        assert len(accumulator.Scalars(key)) == EPOCHS


def test_train_digits_arguments():
    assert train_digits.parse_args(["--early-stopping"]).early_stopping == 3
    assert train_digits.parse_args(["--early-stopping", "5"]).early_stopping == 5
    assert train_digits.parse_args([]).early_stopping is None
    assert train_digits.parse_args(["--optimizer", "sgd"]).lr == 0.05
    with pytest.raises(SystemExit):
        train_digits.parse_args(["--method", "byol"])


def test_score_checkpoints_ranks_by_rmqm(trained):
    cwd, training_output = trained
    folder = cwd / "lightning_logs" / "nt-xent" / "version_0" / "checkpoints"
    args = (str(folder), "--probe-size", "64", "--accuracy")  # the probe and noise: recorded by the callback
    out = run_example("score_checkpoints.py", *args, cwd=cwd)
    lines = [line for line in out.splitlines() if re.match(r"^\s*\d+ \|", line)]
    assert len(lines) == 3  # the top 2 by RMQM and last.ckpt
    ranks = [int(line.split("|")[0]) for line in lines]
    scores = [float(line.split("|")[1]) for line in lines]
    assert ranks == [1, 2, 3] and scores == sorted(scores, reverse=True)
    # as the callback evaluated them: the RMQM each epoch logged (the training table, 4 decimals)
    logged = {int(m.group(1)): m.group(6) for m in map(TABLE_ROW.match, training_output.splitlines()) if m}
    for line, rmqm in zip(lines, scores):
        epoch = int(line.split("|")[6])
        assert f"{rmqm:.4f}" == logged[epoch], line
    last = next(line for line in lines if line.endswith("last.ckpt"))
    assert int(last.split("|")[6]) == EPOCHS - 1  # the last epoch, though it is not in the top 2
    assert f"Best by RMQM: {lines[0].split('|')[-1].strip()}" in out
    assert all(0.0 <= float(line.split("|")[5]) <= 1.0 for line in lines)  # the 1-NN column
    assert "Spearman" not in out  # 3 checkpoints: too few for a correlation, and it says so
    assert "3 checkpoints are too few for one to mean anything" in out


def test_score_checkpoints_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match=r"No \*\.ckpt file under the folder"):
        score_checkpoints.main([str(tmp_path)])
