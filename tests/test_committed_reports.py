"""The committed study reports the README quotes are recomputed from their committed CSVs.

``test_correlation_study.py`` checks a fresh ``--quick`` run's report against its own CSV; this holds the
committed full studies' reports to the committed rows they were written from: both correlation tables
(Pearson and Spearman with their bootstrap intervals), the within-group tables and the collapse count;
and the checkpoint-selection reports (the README's "Choosing a checkpoint") to the within-run CSVs.
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "examples" / "results"
sys.path.insert(0, str(ROOT / "examples"))

from _correlation_report import correlation_table, within_groups_table  # noqa: E402
from checkpoint_selection import main as checkpoint_selection  # noqa: E402

#: The committed full studies: a report and the CSV it was written from, per data set.
STUDIES = ["digits", "mnist1d", "glyphs"]


@pytest.mark.parametrize("name", STUDIES)
def test_the_committed_report_is_recomputed_from_the_committed_csv(name):
    with open(RESULTS / f"encoders_{name}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    report = (RESULTS / f"correlations_{name}.md").read_text()
    assert len(rows) >= 60  # issue #16: 60 encoders or more per data set
    resamples = int(re.search(r"percentile bootstrap over encoders, (\d+) resamples, seed 0", report).group(1))
    healthy = [row for row in rows if not int(row["collapsed"])]
    assert (
        f"\n## Correlation of each score with normalised accuracy, all encoders\n\n"
        f"{correlation_table(rows, resamples)}\n"
    ) in report
    assert (
        f"\n## Correlation of each score with normalised accuracy, non-collapsed encoders\n\n"
        f"{correlation_table(healthy, resamples)}\n"
    ) in report
    assert within_groups_table(rows, "method") in report and within_groups_table(rows, "embedding_dim") in report
    assert f"{len(rows)} encoders: methods" in report


def test_the_committed_checkpoint_selection_reports_are_recomputed_from_the_within_run_csvs(tmp_path):
    summary = (RESULTS / "checkpoint_selection_summary.md").read_text()
    names = re.findall(r"`(within_run_[\w]+\.csv)`", summary.split("\n\n", 2)[1])
    assert len(names) == 5
    for name in names:
        shutil.copy(RESULTS / name, tmp_path / name)
    checkpoint_selection([str(tmp_path / name) for name in names])
    for report in [f"checkpoint_selection_{name.removeprefix('within_run_')}".replace(".csv", ".md") for name in names]:
        assert (tmp_path / report).read_text() == (RESULTS / report).read_text(), report
    assert (tmp_path / "checkpoint_selection_summary.md").read_text() == summary
