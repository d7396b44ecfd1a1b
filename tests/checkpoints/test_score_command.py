"""``rmqm score``: checkpoints scored as the callback evaluated them, ranked, as a table or JSON; clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import digits_like_data, loaders, trainer
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from score_command_module import Dim, MLPEncoder, normalise

from rmqm_callback import PGD, GaussianNoise, RMQMCallback
from rmqm_callback.alterations._recorded import callable_spec
from rmqm_callback.checkpoints.cli import main
from rmqm_callback.functional import knn_accuracy

TESTS = Path(__file__).resolve().parents[1]  # score_command_module.py
MODULE = "score_command_module:MLPEncoder"
EPOCHS = 3


class Logged(Callback):
    """What the RMQM callback logged in each epoch, by key."""

    def __init__(self) -> None:
        self.values: dict[int, dict[str, float]] = {}
        self.logged: dict[int, dict[str, float]] = {}  # every value logged under rmqm/ but the seconds

    def on_validation_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        self.values[trainer.current_epoch] = {key: float(metrics[f"{key}/RMQM"]) for key in ("rmqm/noise", "rmqm/pgd")}
        self.values[trainer.current_epoch]["knn"] = float(metrics["rmqm/knn_accuracy"])
        rmqm = {key: value for key, value in metrics.items() if key.startswith("rmqm/")}
        self.logged[trainer.current_epoch] = {key: float(value) for key, value in rmqm.items() if "seconds" not in key}


def _fit(folder: Path, **callback_settings) -> Logged:
    probe = digits_like_data(24, seed=4)  # with its labels: the callback logs its k-NN accuracy
    callback = RMQMCallback(
        probe,
        [GaussianNoise(levels=8), PGD(levels=4)],
        embed="body",
        preprocess=normalise,
        batch_size=16,
        **callback_settings,
    )
    checkpoint = ModelCheckpoint(dirpath=folder, filename="{epoch}", save_top_k=-1)
    logged = Logged()
    pl.seed_everything(0, verbose=False)
    fit = trainer(folder, max_epochs=EPOCHS, enable_checkpointing=True, callbacks=[callback, checkpoint, logged])
    fit.fit(MLPEncoder(), *loaders())
    return logged


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fitted")
    return folder, _fit(folder)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["score", *args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_json_rows_equal_what_the_callback_logged_ranked_by_rmqm(fitted, capsys, monkeypatch):
    folder, logged = fitted
    monkeypatch.chdir(TESTS)  # --module is imported from the current folder
    code, out, _ = _run(capsys, str(folder), "--module", MODULE, "--json", "--no-progress")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == EPOCHS * 2
    for row in rows:
        assert set(row) >= {"checkpoint", "key", "RMQM", "D", "D_RC", "P_RC", "se/D", "se/D_RC", "se/P_RC"}
        assert Path(row["checkpoint"]).name == f"epoch={row['epoch']}.ckpt"
        assert row["RMQM"] == pytest.approx(logged.values[row["epoch"]][row["key"]], rel=1e-12, abs=0)
        assert row["knn_accuracy"] == logged.values[row["epoch"]]["knn"]  # the callback's, in each of its rows
    for key in ("rmqm/noise", "rmqm/pgd"):
        values = [row["RMQM"] for row in rows if row["key"] == key]
        assert values == sorted(values, reverse=True) and len(values) == EPOCHS


def test_json_keys_are_the_logged_ones_with_the_logged_values(fitted, capsys, monkeypatch):
    folder, logged = fitted
    monkeypatch.chdir(TESTS)
    code, out, _ = _run(capsys, str(folder), "--module", MODULE, "--json", "--no-progress")
    assert code == 0
    where = {"checkpoint", "key", "epoch", "global_step", "num_probes"}
    for row in json.loads(out):
        values = {name: value for name, value in row.items() if name not in where}
        prefix, _ = row["key"].split("/")
        # the alteration's own keys under {key}/; the once-per-callback ones (RankMe, knn_accuracy...) under {prefix}/
        own, once = f"{row['key']}/", f"{prefix}/"
        expected = {
            key.removeprefix(own) if key.startswith(own) else key.removeprefix(once): value
            for key, value in logged.logged[row["epoch"]].items()
            if key.startswith(own) or key.count("/") == 1
        }
        assert set(values) == set(expected)
        assert {"se/D", "left_out/D_RC", "left_out/non_finite", "RankMe", "alpha_ReQ", "knn_accuracy"} <= set(values)
        for name, value in values.items():
            assert value == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def test_the_table_ranks_the_checkpoints(fitted, capsys, monkeypatch):
    folder, logged = fitted
    monkeypatch.chdir(TESTS)
    code, out, _ = _run(capsys, *sorted(map(str, folder.glob("*.ckpt"))), "--module", MODULE, "--no-progress")
    assert code == 0
    best = max(range(EPOCHS), key=lambda epoch: logged.values[epoch]["rmqm/noise"])
    lines = out.splitlines()
    assert lines[0] == f"rmqm/noise: {EPOCHS} checkpoint(s), best RMQM first"
    assert lines[1] == "rank |     RMQM |       D |    D_RC |    P_RC | knn_accuracy | epoch | checkpoint"
    assert lines[2].split(" | ")[0].strip() == "1" and lines[2].endswith(f"epoch={best}.ckpt")
    assert float(lines[2].split(" | ")[5]) == pytest.approx(logged.values[best]["knn"], abs=5e-5)


def test_levels_and_batch_size_override_the_recorded_ones(fitted, capsys, monkeypatch):
    folder, logged = fitted
    monkeypatch.chdir(TESTS)
    path = str(folder / "epoch=0.ckpt")
    code, out, _ = _run(capsys, path, "--module", MODULE, "--json", "--levels", "5", "--no-progress")
    assert code == 0
    noise = next(row for row in json.loads(out) if row["key"] == "rmqm/noise")
    assert noise["RMQM"] != pytest.approx(logged.values[0]["rmqm/noise"], rel=1e-6)


def test_a_checkpoint_without_its_probe_asks_for_one_and_scores_with_it(tmp_path, capsys, monkeypatch):
    logged = _fit(tmp_path, checkpoint_probe_mib=0)  # the probe is recorded as a fingerprint only
    monkeypatch.chdir(TESTS)
    path = str(tmp_path / "epoch=1.ckpt")
    code, _, err = _run(capsys, path, "--module", MODULE, "--no-progress")
    assert code == 2 and "without its probe" in err and "--probe FILE" in err
    probe_file = tmp_path / "probe.pt"
    torch.save(digits_like_data(24, seed=4), probe_file)  # the callback's probe, labels and all
    code, out, err = _run(capsys, path, "--module", MODULE, "--probe", str(probe_file), "--json", "--no-progress")
    assert code == 0 and "differs" not in err
    noise = next(row for row in json.loads(out) if row["key"] == "rmqm/noise")
    assert noise["RMQM"] == pytest.approx(logged.values[1]["rmqm/noise"], rel=1e-12)
    assert noise["knn_accuracy"] == logged.values[1]["knn"]
    torch.save(digits_like_data(24, seed=4)[0], probe_file)  # its inputs only: the same RMQM, no k-NN accuracy
    code, out, _ = _run(capsys, path, "--module", MODULE, "--probe", str(probe_file), "--json", "--no-progress")
    noise = next(row for row in json.loads(out) if row["key"] == "rmqm/noise")
    assert code == 0 and "knn_accuracy" not in noise
    assert noise["RMQM"] == pytest.approx(logged.values[1]["rmqm/noise"], rel=1e-12)
    torch.save(digits_like_data(24, seed=5)[0], probe_file)  # not the callback's probe: said so
    code, _, err = _run(capsys, path, "--module", MODULE, "--probe", str(probe_file), "--no-progress")
    assert code == 0 and "differs from the probe the callback used" in err


def test_knn_overrides_the_recorded_k(fitted, capsys, monkeypatch):
    folder, _ = fitted
    monkeypatch.chdir(TESTS)
    path = folder / "epoch=2.ckpt"
    code, out, _ = _run(capsys, str(path), "--module", MODULE, "--json", "--no-progress", "--knn", "3")
    assert code == 0
    model = MLPEncoder.load_from_checkpoint(path).eval()
    inputs, labels = digits_like_data(24, seed=4)
    with torch.no_grad():
        expected = knn_accuracy(model.body(normalise(inputs)), labels, k=3).item()
    assert {row["knn_accuracy"] for row in json.loads(out)} == {expected}
    code, _, err = _run(capsys, str(path), "--module", MODULE, "--no-progress", "--knn", "0")
    assert code == 2 and "--knn must be >= 1, got 0" in err


def test_a_checkpoint_without_an_rmqm_callback_needs_a_probe(tmp_path, capsys, monkeypatch):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="plain")
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(MLPEncoder(), *loaders())
    monkeypatch.chdir(TESTS)
    code, _, err = _run(capsys, str(tmp_path / "plain.ckpt"), "--module", MODULE)
    assert code == 2 and "holds no RMQMCallback state: pass the probe with --probe FILE" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ckpt", "--module", MODULE], "No checkpoint file or folder at 'missing.ckpt'"),
        (["{folder}", "--module", "score_command_module:NeedsAnArgument"], "NeedsAnArgument.load_from_checkpoint"),
        (["{folder}", "--module", "score_command_module"], "--module must be MODULE:CLASS"),
        (["{folder}", "--module", "score_command_module:normalise"], "is not a LightningModule class"),
        (["{folder}", "--module", "no_such_module:Thing"], "No module named 'no_such_module'"),
        (["{folder}", "--module", MODULE, "--probe", "nothing.pt"], "No probe file at 'nothing.pt'"),
        (["{folder}", "--module", MODULE, "--levels", "2"], "--levels must be >= 3, got 2"),
    ],
)
def test_errors_name_what_to_change(fitted, capsys, monkeypatch, args, message):
    folder, _ = fitted
    monkeypatch.chdir(TESTS)
    code, out, err = _run(capsys, *(arg.format(folder=folder) for arg in args), "--no-progress")
    assert code == 2 and not out
    assert message in err, err


def test_the_console_script_and_python_m_run_the_same_command(fitted):
    folder, logged = fitted
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    rmqm = Path(sys.executable).with_name("rmqm")
    commands = [[str(rmqm)], [sys.executable, "-m", "rmqm_callback"]]
    outputs = []
    for command in commands:
        done = subprocess.run(
            [*command, "score", str(folder / "epoch=2.ckpt"), "--module", MODULE, "--json"],
            cwd=TESTS, env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][0]["key"] == "rmqm/noise"
    assert outputs[0][0]["RMQM"] == pytest.approx(logged.values[2]["rmqm/noise"], rel=1e-12)


def test_a_lambda_preprocess_asks_for_preprocess_and_the_training_scripts_functions_are_not_recorded(
    tmp_path, capsys, monkeypatch
):
    callback = RMQMCallback(digits_like_data(24, seed=4)[0], GaussianNoise(levels=6), preprocess=lambda x: x)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="run")
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[callback, checkpoint]).fit(
        MLPEncoder(), *loaders()
    )
    monkeypatch.chdir(TESTS)
    path = str(tmp_path / "run.ckpt")
    code, _, err = _run(capsys, path, "--module", MODULE, "--no-progress")
    assert code == 2 and "preprocess=<function" in err and "pass it as --preprocess MODULE:NAME" in err
    code, _, _ = _run(capsys, path, "--module", MODULE, "--preprocess", "score_command_module:normalise")
    assert code == 0

    def in_the_training_script(x):
        return x

    in_the_training_script.__module__, in_the_training_script.__qualname__ = "__main__", "in_the_training_script"
    assert callable_spec(in_the_training_script) == {"unrecorded": repr(in_the_training_script)}


def test_an_alteration_whose_init_args_miss_an_argument_is_not_rebuilt_with_a_default(tmp_path, capsys, monkeypatch):
    callback = RMQMCallback(digits_like_data(24, seed=4)[0], Dim(levels=5, strength=0.5))
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="run")
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[callback, checkpoint]).fit(
        MLPEncoder(), *loaders()
    )
    monkeypatch.chdir(TESTS)
    code, _, err = _run(capsys, str(tmp_path / "run.ckpt"), "--module", MODULE, "--no-progress")
    assert code == 2 and "its __init__ takes ['strength'], which Dim.init_args() does not return" in err


def test_a_checkpoint_of_version_0_1_is_scored_with_its_recorded_settings(fitted, tmp_path, capsys, monkeypatch):
    folder, logged = fitted
    saved = torch.load(folder / "epoch=1.ckpt", weights_only=False)
    (key,) = [key for key in saved["callbacks"] if key.startswith("RMQMCallback")]
    state = saved["callbacks"][key]
    settings = dict(state["settings"], alterations={"noise": state["settings"]["alterations"]["noise"]})
    saved["callbacks"][key] = {  # what 0.1 saved: tensors and text
        "probe_inputs": state["probe"]["inputs"], "probe_labels": state["probe"]["labels"], "probe_size": None,
        "settings": settings, "last_results": state["last_results"],
    }  # fmt: skip
    torch.save(saved, tmp_path / "old.ckpt")
    monkeypatch.chdir(TESTS)
    args = ["--module", MODULE, "--json", "--no-progress", "--embed", "body"]
    code, out, _ = _run(capsys, str(tmp_path / "old.ckpt"), *args, "--preprocess", "score_command_module:normalise")
    assert code == 0
    (row,) = json.loads(out)
    assert row["key"] == "rmqm/noise" and row["RMQM"] == pytest.approx(logged.values[1]["rmqm/noise"], rel=1e-12)
    settings["alterations"]["pgd"] = state["settings"]["alterations"]["pgd"]
    torch.save(saved, tmp_path / "old.ckpt")
    code, _, err = _run(capsys, str(tmp_path / "old.ckpt"), *args)
    assert code == 2 and "PGD(" in err and "records it as text only" in err


def test_a_diverged_checkpoint_is_ranked_last_with_nan_not_an_error(fitted, tmp_path, capsys, monkeypatch):
    folder, _ = fitted
    saved = torch.load(folder / "epoch=0.ckpt", weights_only=False)
    saved["state_dict"] = {name: torch.full_like(value, float("nan")) for name, value in saved["state_dict"].items()}
    torch.save(saved, tmp_path / "diverged.ckpt")
    monkeypatch.chdir(TESTS)
    code, out, err = _run(
        capsys, str(tmp_path / "diverged.ckpt"), str(folder / "epoch=1.ckpt"), "--module", MODULE, "--json",
        "--no-progress",
    )  # fmt: skip
    assert code == 0 and "non-finite representations" in err
    noise = [row for row in json.loads(out) if row["key"] == "rmqm/noise"]
    assert noise[0]["checkpoint"].endswith("epoch=1.ckpt") and noise[1]["RMQM"] is None  # NaN: last, null in JSON
