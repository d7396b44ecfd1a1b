"""The package as a user installs it: version, license, typed public API, the names the README promises."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rmqm_callback

ROOT = Path(__file__).resolve().parents[1]


PYPROJECT = (ROOT / "pyproject.toml").read_text()


def test_version_is_the_installed_metadata_and_single_sourced():
    assert rmqm_callback.__version__ == importlib.metadata.version("rmqm_callback")
    assert 'dynamic = ["version"]' in PYPROJECT
    assert 'version = { attr = "rmqm_callback._version.__version__" }' in PYPROJECT


def test_the_license_file_matches_pyproject():
    assert importlib.metadata.metadata("rmqm_callback")["License"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_py_typed_ships_with_the_package():
    assert (Path(rmqm_callback.__file__).parent / "py.typed").exists()
    assert 'rmqm_callback = ["py.typed"]' in PYPROJECT  # package data: in wheels too


def test_the_readmes_functional_names_import():
    from rmqm_callback.functional import alpha_req, rankme, rmqm  # noqa: F401


def test_mypy_accepts_a_typed_user_script_of_the_public_api():
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # the package as a user's mypy finds it, py.typed and all
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--strict", "--follow-imports=silent",
         str(ROOT / "tests" / "typed_usage.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("rmqm_callback.callback", "RMQMCallback", "rmqm_callback.lightning.callback"),
        ("rmqm_callback.metric", "RMQM", "rmqm_callback.metrics.rmqm"),
        ("rmqm_callback.spectral_metric", "SpectralScores", "rmqm_callback.metrics.spectral"),
        ("rmqm_callback.scoring", "score", "rmqm_callback.evaluation.scoring"),
        ("rmqm_callback.probe", "Probe", "rmqm_callback.evaluation.probe"),
        ("rmqm_callback.encoder", "Encoder", "rmqm_callback.evaluation.encoder"),
        ("rmqm_callback.cli", "main", "rmqm_callback.checkpoints.cli"),
    ],
)
def test_module_paths_of_0_2_still_import(old, name, new):
    # a separate interpreter: nothing imported yet, as in a user's script or a LightningCLI config
    code = f"from {old} import {name} as a; from {new} import {name} as b; assert a is b; import {old}"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
