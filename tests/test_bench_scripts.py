"""Every benchmark script imports (its imports resolve) and ``run_all.py`` runs every one of them.

The timed benchmarks run only by hand; their quick modes are tested where they are cheap
(``test_bench_noise.py``, ``test_bench_epoch_share.py``, ``test_gpu_check.py``). This catches the rot
that a rename elsewhere leaves in the others, in-process and in about a second per script.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
#: The scripts meant to be run (the helper modules' names begin with an underscore).
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_"))
#: Runnable, but a check that the naive pipeline agrees with score(), not a benchmark.
NOT_BENCHMARKS = {"naive_baseline", "run_all"}


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_run_all_runs_every_benchmark_script():
    run_all = importlib.import_module("run_all")
    assert sorted(name.removesuffix(".py") for name in run_all.SCRIPTS) == sorted(set(SCRIPTS) - NOT_BENCHMARKS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_imports_and_has_a_main(script, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # a script that extends sys.path extends a copy
    module = importlib.import_module(script)
    assert callable(module.main)
