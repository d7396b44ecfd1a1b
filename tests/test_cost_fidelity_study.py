"""examples/cost_fidelity_study.py --quick, run end to end as a user runs it, and its numbers recomputed."""

import csv
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_examples import run_example

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import correlation_study  # noqa: E402
import cost_fidelity_study as cost  # noqa: E402
from _stats import pearson, spearman  # noqa: E402

from rmqm_callback import GaussianNoise, score  # noqa: E402

QUICK_JOBS = [("cross-entropy", 16), ("nt-xent", 16), ("triplet-ss", 16)]
JOB = {"method": "nt-xent", "optimizer": "adam", "embedding_dim": 16, "seed": 0}
SETTINGS = {"dataset": "digits", "epochs": 3, "batch_size": 64, "probe_size": 256, "levels": 100}  # --quick's


@pytest.fixture(scope="module")
def in_process():
    """In this process, on one thread as the study's workers: correlation_study's row for JOB, and one
    cheap setting (10 levels, the first 64 probes) scored by hand on JOB's encoder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = correlation_study.train_and_score(JOB, SETTINGS)
            model, _ = correlation_study.train_encoder(JOB, SETTINGS)
        probe = correlation_study.load_data(SETTINGS)["probe_x"]
        cheap = score(model, probe[:64], GaussianNoise(levels=10))
    finally:
        torch.set_num_threads(threads)
    return row, {key: float(value) for key, value in cheap.items()}


@pytest.fixture(scope="module")
def quick(tmp_path_factory, in_process):
    """The --quick run, checked against correlation_study's row for JOB."""
    cwd = tmp_path_factory.mktemp("cost_fidelity")
    row, _ = in_process
    with open(cwd / "encoders.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    args = ["--quick", "--workers", "1", "--output-dir", "out", "--reference", "encoders.csv"]  # no spawn start-up
    stdout = run_example("cost_fidelity_study.py", *args, cwd=cwd)
    with open(cwd / "out" / "cost_fidelity_digits.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, (cwd / "out" / "cost_fidelity_digits.md").read_text(), stdout


def table_rows(markdown):
    """{(levels, probes): [cells]} of the markdown table."""
    lines = [line for line in markdown.splitlines() if re.match(r"^\| \d+ \| \d+ \|", line)]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {(int(c[0]), int(c[1])): c for c in cells}


def column(rows, key, levels, probes):
    """``key`` of every encoder at one setting, in the CSV's (encoder) order."""
    mine = [row for row in rows if (int(row["levels"]), int(row["probes"])) == (levels, probes)]
    return np.array([float(row[key]) for row in mine])


def test_csv_has_every_encoder_at_every_setting(quick):
    rows, _, _ = quick
    settings = [(levels, probes) for levels in (10, 25, 50, 100) for probes in (64, 128, 256)]
    assert len(rows) == len(QUICK_JOBS) * 12
    for i, (method, dim) in enumerate(QUICK_JOBS):
        mine = rows[12 * i : 12 * (i + 1)]
        assert {(row["method"], int(row["embedding_dim"])) for row in mine} == {(method, dim)}
        assert [(int(row["levels"]), int(row["probes"])) for row in mine] == settings
        assert len({row["knn_accuracy"] for row in mine}) == 1  # one encoder, one accuracy
    for row in rows:
        levels, probes = int(row["levels"]), int(row["probes"])
        assert int(row["forward_passes"]) == levels * probes
        assert float(row["relative_cost"]) == levels * probes / (100 * 256)
        assert float(row["seconds"]) > 0
        rmqm = math.log(1 + float(row["D"]) + 1 / float(row["D_RC"]) + 1 / float(row["P_RC"]))
        assert float(row["RMQM"]) == pytest.approx(rmqm, rel=1e-5)  # eq. 4


def test_markdown_table_matches_the_csv(quick):
    rows, markdown, _ = quick
    table = table_rows(markdown)
    assert len(table) == 12
    assert table[(100, 256)][7] == "+1.00 [+1.00, +1.00]"  # the full ranking against itself
    full = column(rows, "RMQM", 100, 256)
    accuracy = column(rows, "knn_accuracy", 100, 256)
    for (levels, probes), cells in table.items():
        assert cells[2] == f"{levels * probes:,}"
        assert float(cells[3]) == levels * probes / (100 * 256)
        assert float(cells[4]) == pytest.approx(np.median(column(rows, "seconds", levels, probes)), abs=5e-4)
        rmqm = column(rows, "RMQM", levels, probes)
        assert cells[7].split()[0] == f"{spearman(rmqm, full):+.2f}"
        assert cells[8].split()[0] == f"{pearson(rmqm, accuracy):+.2f}"
        assert cells[9].split()[0] == f"{spearman(rmqm, accuracy):+.2f}"
    assert re.search(r"Wall time of this run: \d+ s", markdown)


def test_full_setting_reproduces_the_correlation_study(quick):
    _, markdown, out = quick
    assert "RMQM and 1-NN accuracy identical for 1 of 1 encoders (of 3)" in markdown
    assert "Wrote out/cost_fidelity_digits.csv, cost_fidelity_digits.md" in out


def test_a_cheap_setting_is_the_first_probes_at_fewer_levels(quick, in_process):
    rows, _, _ = quick
    [row] = [r for r in rows if (r["method"], r["levels"], r["probes"]) == ("nt-xent", "10", "64")]
    _, cheap = in_process
    assert {key: float(row[key]) for key in ("RMQM", "D", "D_RC", "P_RC")} == {
        key: cheap[key] for key in ("RMQM", "D", "D_RC", "P_RC")
    }


def test_reproduction_reports_a_difference(quick, tmp_path):
    rows, _, _ = quick
    typed = [{**row, "levels": int(row["levels"]), "probes": int(row["probes"])} for row in rows]
    for row in typed:
        row.update({key: float(row[key]) for key in ("RMQM", "knn_accuracy")})
    reference = tmp_path / "encoders.csv"
    reference.write_text(
        "method,optimizer,embedding_dim,seed,epochs,RMQM,knn_accuracy\n"
        f"cross-entropy,adam,16,0,3,{typed[11]['RMQM'] + 1e-3!r},{typed[11]['knn_accuracy']!r}\n"
    )
    assert "identical for 0 of 1 encoders (of 3); largest differences 1.00e-03 (RMQM)" in cost.reproduction(
        typed, reference
    )
    assert "does not exist" in cost.reproduction(typed, tmp_path / "missing.csv")


def test_quick_defaults_and_explicit_arguments():
    args = cost.parse_args(["--quick", "--epochs", "5"])
    assert (args.methods, args.dims, args.optimizers, args.seeds, args.epochs) == (
        ["cross-entropy", "nt-xent", "triplet-ss"],
        [16],
        ["adam"],
        [0],
        5,
    )
    full = cost.parse_args([])
    assert (len(full.methods), full.dims, full.epochs, full.batch_size) == (5, [16, 32, 64, 128], 30, 64)
    assert full.reference == ROOT / "examples" / "results" / "encoders_digits.csv"
    glyphs = cost.parse_args(["--dataset", "glyphs", "--quick"])
    assert (glyphs.dataset, glyphs.train_size, glyphs.epochs, glyphs.dims) == ("glyphs", 1000, 3, [16])
    assert glyphs.reference.name == "encoders_glyphs.csv"
