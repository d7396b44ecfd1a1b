"""examples/within_run_study.py end to end (--quick, in a subprocess), and its helpers on known cases."""

import csv
import itertools
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_examples import run_example
from torch import nn

from rmqm_callback.functional import knn_accuracy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

from _stats import pearson, spearman  # noqa: E402
from _within import (  # noqa: E402
    normalized_jacobians,
    participation_ratio,
    predicted_p_rc,
    representation_participation_ratio,
    select_epoch,
)
from checkpoint_selection import kept_epochs, selection_rows  # noqa: E402
from checkpoint_selection import main as selection_main  # noqa: E402
from within_run_study import SELECTION_COLUMNS, probe_knn_columns  # noqa: E402

SETUPS = ("transfer", "all-digits")
METHODS = ("cross-entropy", "nt-xent", "triplet-supervised")
EPOCHS = 3  # --quick
SIGNED = r"([+-]\d\.\d\d|nan)"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One --quick run (default 2 spawned workers), as a user runs it, in a fresh working directory."""
    cwd = tmp_path_factory.mktemp("within_run")
    stdout = run_example("within_run_study.py", "--quick", "--output-dir", "out", cwd=cwd)
    out = cwd / "out"
    with open(out / "within_run_digits.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return out, rows, (out / "within_run_digits.md").read_text(), stdout


def runs_of(rows):
    runs = {}
    for row in rows:
        runs.setdefault((row["setup"], row["method"], row["seed"]), []).append(row)
    return runs


def values(rows, name):
    return np.array([float(row[name]) for row in rows])


def close(printed, value):
    return (printed == "nan" and not math.isfinite(value)) or abs(float(printed) - value) <= 0.005 + 1e-9


def test_csv_has_one_row_per_checkpoint_with_consistent_numbers(study):
    _, rows, _, stdout = study
    keys = [(row["setup"], row["method"], row["seed"], int(row["epoch"])) for row in rows]
    assert keys == list(itertools.product(SETUPS, METHODS, ["0"], range(EPOCHS + 1)))
    for row in rows:
        for name in ("RMQM", "D", "D_RC", "P_RC", "rankme", "alpha_req", "jacobian_pr", "representation_pr"):
            assert math.isfinite(float(row[name])) and float(row[name]) > 0, (name, row)
        assert float(row["RMQM"]) == pytest.approx(
            math.log(1 + float(row["D"]) + 1 / float(row["D_RC"]) + 1 / float(row["P_RC"])), rel=1e-9
        )
        assert 0.0 <= float(row["knn_accuracy"]) <= 1.0
        assert math.isnan(float(row["train_loss"])) == (row["epoch"] == "0")  # no loss before training
    # the same seed and architecture: every method's random initialisation scores the same on a set-up's probe
    for setup in SETUPS:
        assert len({row["RMQM"] for row in rows if row["setup"] == setup and row["epoch"] == "0"}) == 1
    # the weights do change: the trained checkpoints differ from the initial one
    assert len({row["RMQM"] for row in rows}) > len(SETUPS) * (EPOCHS + 1)
    assert "Wrote out/within_run_digits.csv, within_run_digits.md, within_run_digits.png" in stdout


def test_markdown_per_run_table_is_recomputed_from_the_csv(study):
    _, rows, text, _ = study
    pattern = re.compile(
        rf"^\| (\S+) \| (\S+) \| (\d+) \| {SIGNED} \| {SIGNED} \| (\d+) \| ([\d.]+) \| ([\d.-]+) \| ([+-][\d.]+)"
        rf" \| (\d+) \| ([\d.]+) \| ([\d.-]+) \| ([+-][\d.]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
        re.MULTILINE,
    )
    table = text.split("## RMQM per run")[1].split("##")[0]
    found = pattern.findall(table)
    runs = runs_of(rows)
    assert len(found) == len(runs) == len(SETUPS) * len(METHODS)
    for cells in found:
        mine = runs[cells[:3]]
        epoch, rmqm, accuracy = values(mine, "epoch"), values(mine, "RMQM"), values(mine, "knn_accuracy")
        assert close(cells[3], spearman(rmqm, accuracy)) and close(cells[4], spearman(rmqm, epoch))
        trained = epoch >= 1  # ModelCheckpoint never sees the random initialisation
        best = accuracy[trained].max()
        for offset, pick in ((5, np.argmax), (9, np.argmin)):  # first of ties, as ModelCheckpoint keeps
            kept = int(epoch[trained][pick(rmqm[trained])])
            assert int(cells[offset]) == kept
            assert float(cells[offset + 1]) == pytest.approx(accuracy[kept], abs=5e-4)
            assert float(cells[offset + 2]) == pytest.approx(best - accuracy[kept], abs=5e-4)
            assert float(cells[offset + 3]) == pytest.approx(accuracy[-1] - accuracy[kept], abs=5e-4)
        assert int(cells[13]) == int(epoch[trained][np.argmax(accuracy[trained])])
        assert float(cells[14]) == pytest.approx(best, abs=5e-4)
        assert float(cells[15]) == pytest.approx(accuracy[-1], abs=5e-4)
        assert float(cells[16]) == pytest.approx(accuracy[0], abs=5e-4)  # the random initialisation


def test_markdown_score_tables_and_mechanism_are_recomputed_from_the_csv(study):
    _, rows, text, _ = study
    runs = runs_of(rows)
    columns = ("RMQM", "D", "D_RC", "P_RC", "rankme", "alpha_req", "jacobian_pr", "representation_pr")
    for title, against in (("1-NN accuracy", "knn_accuracy"), ("the epoch", "epoch")):
        table = text.split(f"## Spearman of every score with {title}, per run")[1].split("##")[0]
        lines = [line for line in table.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in SETUPS]
        assert len(lines) == len(runs)
        for line in lines:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            mine = runs[tuple(cells[:3])]
            for printed, name in zip(cells[3:], columns, strict=True):
                assert close(printed, spearman(values(mine, name), values(mine, against))), (title, name, line)
    pooled = re.search(rf"^\| all \| pooled \| all \| (\d+) \| {SIGNED} \| {SIGNED} \| {SIGNED} \|", text, re.MULTILINE)
    assert pooled and int(pooled.group(1)) == len(rows)
    p_rc = values(rows, "P_RC")
    assert close(pooled.group(2), spearman(p_rc, values(rows, "epoch")))
    assert close(pooled.group(4), pearson(values(rows, "jacobian_pr"), p_rc))
    ratio = p_rc / predicted_p_rc(values(rows, "jacobian_pr"))
    line = re.search(r"^- all \((\d+) checkpoints\): measured / predicted P_RC has mean ([\d.]+)", text, re.MULTILINE)
    assert line and int(line.group(1)) == len(rows)
    assert float(line.group(2)) == pytest.approx(ratio.mean(), abs=0.005 + 1e-9)
    assert "Wall time of this run:" in text


def test_selection_report_is_written_and_recomputed_from_the_csv(study, tmp_path):
    out, rows, _, stdout = study
    text = (out / "checkpoint_selection_digits.md").read_text()
    assert "checkpoint_selection_digits.md" in stdout
    # --quick has a probe of 64: the 256 / 512 columns are NaN and no selector is made of them
    for row in rows:
        for name in SELECTION_COLUMNS:
            assert math.isfinite(float(row[name])) == name.startswith("probe_knn_n64_"), (name, row[name])
    assert "k-NN n=64 k=10" in text and "n=256" not in text
    again = tmp_path / "within_run_digits.csv"
    again.write_bytes((out / "within_run_digits.csv").read_bytes())
    other = tmp_path / "within_run_other.csv"  # a second data set: the summary over both
    other.write_bytes(again.read_bytes())
    selection_main([str(again), str(other)])
    assert (tmp_path / "checkpoint_selection_digits.md").read_text() == text
    summary = (tmp_path / "checkpoint_selection_summary.md").read_text()
    given_up = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 9 and cells[0] in SETUPS:
            given_up[(cells[0], cells[1])] = f"{cells[4]} ({cells[5]})"
    for dataset in ("digits", "other"):
        for setup in SETUPS:
            row = f"| {dataset} | {setup} | 3 | " + " | ".join(
                [given_up[(setup, "last")], given_up[(setup, "max-RMQM")], given_up[(setup, "k-NN n=64 k=1")], "-", "-"]
            )
            assert row + " |" in summary, (row, summary)
    # every printed row: the epochs each selector keeps, and the accuracy they give
    runs = runs_of(rows)
    for setup in SETUPS:
        mine = [sorted(rows, key=lambda row: int(row["epoch"])) for key, rows in runs.items() if key[0] == setup]
        for selector, column in (("max-RMQM", "RMQM"), ("k-NN n=64 k=3", "probe_knn_n64_k3")):
            kept = [1 + int(np.argmax(values(run, column)[1:])) for run in mine]
            accuracy = [float(run[epoch]["knn_accuracy"]) for run, epoch in zip(mine, kept)]
            line = f"| {setup} | {selector} | {', '.join(map(str, kept))} | {np.mean(accuracy):.3f} |"
            assert line in text, (line, text)


def test_selectors_keep_what_model_checkpoint_keeps_and_their_cost_by_hand():
    def run(seed, accuracy, rmqm, probe):
        return [
            {"setup": "s", "method": "m", "seed": seed, "epoch": e, "knn_accuracy": a, "RMQM": r, "probe_knn_n8_k1": p}
            for e, (a, r, p) in enumerate(zip(accuracy, rmqm, probe))
        ]

    # epoch 0 is never kept; of tied probe accuracies (epochs 2 and 3) the earliest wins
    first = run(0, [0.9, 0.5, 0.7, 0.8, 0.6], [9.0, 3.0, 2.0, 1.0, 0.0], [1.0, 0.2, 0.6, 0.6, 0.4])
    assert kept_epochs(first, {"k-NN n=8 k=1": "probe_knn_n8_k1"}) == {
        "best epoch": 3, "last": 4, "max-RMQM": 1, "k-NN n=8 k=1": 2,
    }  # fmt: skip
    second = run(1, [0.1, 0.4, 0.2, 0.3, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.1, 0.2, 0.3, 0.4])
    table = selection_rows({("s", "m", 0): first, ("s", "m", 1): second}, {"k-NN": "probe_knn_n8_k1"})
    knn = next(entry for entry in table if entry["selector"] == "k-NN")
    assert knn["epochs"] == [2, 4]
    assert knn["accuracy"] == pytest.approx((0.7 + 0.5) / 2)
    assert knn["vs_best"] == pytest.approx((0.1 + 0.0) / 2) and knn["worst_vs_best"] == pytest.approx(0.1)
    assert knn["vs_last"] == pytest.approx((0.1 + 0.0) / 2) and knn["not_worse_than_last"] == 2
    assert knn["vs_rmqm"] == pytest.approx((0.2 + 0.1) / 2)  # max-RMQM keeps epoch 1 in both (ties: earliest)


def test_probe_knn_columns_are_the_knn_of_the_first_n_probes():
    z, y = torch.randn(100, 5, generator=torch.Generator().manual_seed(0)), torch.arange(100) % 3
    columns = probe_knn_columns(z, y)
    assert list(columns) == list(SELECTION_COLUMNS)
    for k in (1, 3, 5, 10):
        assert columns[f"probe_knn_n64_k{k}"] == float(knn_accuracy(z[:64], y[:64], k))
        assert math.isnan(columns[f"probe_knn_n256_k{k}"]) and math.isnan(columns[f"probe_knn_n512_k{k}"])


@pytest.mark.parametrize(("dataset", "setup"), [("mnist1d", "all-signals"), ("glyphs", "transfer")])
def test_quick_mode_runs_on_the_generated_data_sets(tmp_path, dataset, setup):
    # one short run each (the suite's time is shared): the data set's own set-up names, every report written
    args = ("--dataset", dataset, "--quick", "--methods", "cross-entropy", "--setups", setup, "--workers", "1")
    run_example("within_run_study.py", *args, "--output-dir", "out", "--cache-dir", "cache", cwd=tmp_path)
    with open(tmp_path / "out" / f"within_run_{dataset}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["setup"], row["method"], int(row["epoch"])) for row in rows] == [
        (setup, "cross-entropy", epoch) for epoch in range(EPOCHS + 1)
    ]
    assert all(0.0 <= float(row["probe_knn_n64_k1"]) <= 1.0 for row in rows)
    report = (tmp_path / "out" / f"within_run_{dataset}.md").read_text()
    assert report.startswith(f"# RMQM inside one training run ({dataset})")
    selection = (tmp_path / "out" / f"checkpoint_selection_{dataset}.md").read_text()
    assert f"| {setup} | k-NN n=64 k=1 |" in selection


def test_figure_is_written(study):
    out, *_ = study
    assert (out / "within_run_digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_epoch_skips_the_initialisation_and_keeps_the_earliest_tie():
    epochs = [0, 1, 2, 3, 4]
    assert select_epoch(epochs, [9.0, 1.0, 3.0, 3.0, 2.0], "max") == 2
    assert select_epoch(epochs, [0.0, 1.0, 3.0, 1.0, 2.0], "min") == 1
    assert select_epoch(epochs, [9.0, 1.0, 3.0, 3.0, 2.0], "max", first=0) == 0
    with pytest.raises(ValueError, match="`mode` must be 'max' or 'min', got 'best'"):
        select_epoch(epochs, [1.0] * 5, "best")


def test_participation_ratio_known_cases():
    assert float(participation_ratio(torch.ones(7))) == pytest.approx(7.0)
    assert float(participation_ratio(torch.tensor([3.0, 0.0, 0.0]))) == pytest.approx(1.0)
    assert float(participation_ratio(torch.tensor([1.0, 1.0, 0.0]))) == pytest.approx(2.0)
    # orthonormal rows, centred: every singular value equal
    z = torch.cat([torch.eye(4), -torch.eye(4)])
    assert representation_participation_ratio(z) == pytest.approx(4.0)


@pytest.mark.parametrize("singular_values", [np.ones(20), np.r_[np.ones(8), 0.3 * np.ones(40)], np.linspace(1, 0, 64)])
def test_predicted_p_rc_matches_a_simulated_linear_encoder(singular_values):
    """Steps |J a| of a linear map under fresh isotropic noise: mean |dp_j - dp_(j-1)| / dp_j."""
    noise = np.random.default_rng(0).standard_normal((2, 50_000, len(singular_values)))
    steps = np.sqrt(((singular_values * noise) ** 2).sum(-1))
    simulated = np.mean(np.abs(steps[1] - steps[0]) / steps[1])
    pr = float(participation_ratio(torch.as_tensor(singular_values)))
    assert simulated == pytest.approx(float(predicted_p_rc(pr)), rel=0.06)


def test_normalized_jacobians_match_autograd_per_image():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 3)).train()
    images = torch.rand(4, 1, 3, 4)
    jacobians = normalized_jacobians(model, images)
    assert jacobians.shape == (4, 3, 12) and model.training  # mode restored
    for image, jacobian in zip(images, jacobians):

        def normalized(x):
            z = model(x.reshape(1, 1, 3, 4))[0]
            return z / z.norm()

        expected = torch.autograd.functional.jacobian(normalized, image.flatten())
        torch.testing.assert_close(jacobian, expected)
