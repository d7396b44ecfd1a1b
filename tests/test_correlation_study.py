"""examples/correlation_study.py --quick on each data set, run as a user runs it; its report recomputed from its CSV."""

import csv
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from test_examples import run_example

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import correlation_study  # noqa: E402
from _data import DATASETS  # noqa: E402
from _methods import METHODS  # noqa: E402
from _stats import bootstrap_ci, min_max, pearson, spearman  # noqa: E402

#: Table label -> CSV column, written out again here rather than imported: the report must match it.
COLUMNS = {
    "RMQM": "RMQM",
    "D": "D",
    "1/D_RC": "inv_D_RC",
    "1/P_RC": "inv_P_RC",
    "RMQM, scaled noise": "RMQM_scaled",
    "D, scaled noise": "D_scaled",
    "1/D_RC, scaled noise": "inv_D_RC_scaled",
    "1/P_RC, scaled noise": "inv_P_RC_scaled",
    "RankMe": "rankme",
    "RankMe, centred": "rankme_centred",
    "alpha-ReQ": "alpha_req",
    "alpha-ReQ, centred": "alpha_req_centred",
    "-abs(alpha-ReQ - 1)": "neg_alpha_req_distance",
    "-abs(alpha-ReQ - 1), centred": "neg_alpha_req_centred_distance",
}
#: The digits run plain --quick (10 encoders); the generated sets one embedding size of it (5 encoders), in a
#: fresh cache: the test suite's time is shared (the full --quick of each takes 20-30 s on 2 cores).
RUNS = {"digits": (), "mnist1d": ("--dims", "16"), "glyphs": ("--dims", "16")}
SIGNED = r"([+-]\d\.\d\d)"
ROW = re.compile(rf"^\| (.+?) \| (\d+) \| {SIGNED} \[{SIGNED}, {SIGNED}\] \| {SIGNED} \[{SIGNED}, {SIGNED}\] \|$")


@pytest.fixture(scope="module", params=sorted(RUNS))
def study(request, tmp_path_factory):
    name = request.param
    cwd = tmp_path_factory.mktemp(f"correlation_{name}")
    args = ("--dataset", name, "--quick", *RUNS[name], "--output-dir", "out", "--cache-dir", "cache")
    stdout = run_example("correlation_study.py", *args, cwd=cwd)
    with open(cwd / "out" / f"encoders_{name}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return name, cwd, rows, (cwd / "out" / f"correlations_{name}.md").read_text(), stdout


def column(rows, key):
    return np.array([float(row[key]) for row in rows])


def section(text, title):
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def test_one_row_per_encoder_with_consistent_numbers(study):
    name, cwd, rows, _, stdout = study
    dims = [16] if RUNS[name] else [16, 64]
    assert [(row["method"], int(row["embedding_dim"])) for row in rows] == [(m, d) for m in METHODS for d in dims]
    for row in rows:
        for suffix in ("", "_scaled"):  # eq. 4 under both noises
            d, inv_d_rc, inv_p_rc = (float(row[f"{key}{suffix}"]) for key in ("D", "inv_D_RC", "inv_P_RC"))
            assert float(row[f"RMQM{suffix}"]) == pytest.approx(math.log(1 + d + inv_d_rc + inv_p_rc), rel=1e-9)
            assert inv_d_rc == pytest.approx(1 / float(row[f"D_RC{suffix}"]), rel=1e-12)
        assert float(row["alpha_req_centred"]) == pytest.approx(float(row["alpha_req"]), abs=1e-6)  # it centres
        assert float(row["rankme_centred"]) > 1.0
        chance = 1 / len(DATASETS[name].seen)
        assert int(row["collapsed"]) == int(float(row["seen_knn_accuracy"]) < chance + 0.1)  # the stated rule
    assert column(rows, "normalised_accuracy").tolist() == min_max(column(rows, "knn_accuracy")).tolist()
    assert (cwd / "out" / f"rmqm_vs_accuracy_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Wrote out/encoders_{name}.csv, correlations_{name}.md, rmqm_vs_accuracy_{name}.png" in stdout


def test_both_correlation_tables_are_recomputed_from_the_csv(study):
    _, _, rows, text, _ = study
    healthy = [row for row in rows if row["collapsed"] == "0"]
    for title, mine in (("all encoders", rows), ("non-collapsed encoders", healthy)):
        table = section(text, f"Correlation of each score with normalised accuracy, {title}")
        found = {m.group(1): m.groups()[1:] for m in map(ROW.match, table.splitlines()) if m}
        assert list(found) == list(COLUMNS), title
        target = column(mine, "normalised_accuracy")
        for label, name in COLUMNS.items():
            values = column(mine, name)
            n, r, r_low, r_high, rho, rho_low, rho_high = found[label]
            assert int(n) == len(mine)
            assert r == f"{pearson(values, target):+.2f}" and rho == f"{spearman(values, target):+.2f}", label
            for statistic, low, high in ((pearson, r_low, r_high), (spearman, rho_low, rho_high)):
                interval = bootstrap_ci(values, target, statistic, resamples=2000, seed=0)
                assert (low, high) == tuple(f"{bound:+.2f}" for bound in interval), (title, label)


def test_settings_state_the_noise_scaling_and_the_collapse_rule(study):
    name, cwd, rows, text, _ = study
    settings = {"dataset": name, "probe_size": 128, "train_size": correlation_study.QUICK[name]["train_size"]}
    data = correlation_study.load_data({**settings, "cache_dir": cwd / "cache"})
    max_std = float(data["probe_x"].double().std()) / 0.3081
    assert f"scaled noise: std 0 to {max_std:.4f} (the probe's input std over MNIST's pixel std, 0.3081)" in text
    assert f"({len(data['train_x']):,} training inputs, batch size 64)" in text
    chance = 1 / len(DATASETS[name].seen)
    assert f"below chance + 0.1 = {chance + 0.1:.3f}" in text
    assert f"Collapsed: {sum(row['collapsed'] == '1' for row in rows)} of {len(rows)} encoders." in text
    assert re.search(r"Wall time of this run: \d+ s", text)


def test_quick_and_full_defaults_per_data_set():
    quick = correlation_study.parse_args(["--dataset", "glyphs", "--quick", "--epochs", "2"])
    assert (quick.dims, quick.optimizers, quick.seeds, quick.epochs, quick.train_size, quick.levels) == (
        [16, 64], ["adam"], [0], 2, 1000, 20
    )  # fmt: skip
    for name in DATASETS:
        full = correlation_study.parse_args(["--dataset", name])
        assert (full.dims, full.epochs, full.train_size, full.levels, full.seeds) == (
            [16, 32, 64, 128], 30, None, 100, [0, 1, 2]
        )  # fmt: skip
    assert correlation_study.parse_args(["--quick"]).train_size is None  # the digits: every training image
    with pytest.raises(SystemExit):
        correlation_study.parse_args(["--dataset", "cifar10"])
