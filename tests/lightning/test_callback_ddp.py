"""``RMQMCallback`` under a real 2-process DDP fit on CPU (gloo) equals the single-process ``score``.

Each case runs ``tests/ddp_fit_script.py`` in a subprocess: a real
``Trainer(strategy="ddp", accelerator="cpu", devices=2)`` whose subprocess launcher re-runs the
script for rank 1. Every rank writes the ``rmqm/*`` entries of ``trainer.callback_metrics`` and its
final weights; this process then loads the weights and scores the same probe with
``rmqm_callback.score`` in one process. Blocks of ``batch_size`` probes are the same whatever the
number of processes and the alterations are keyed by global probe index, so the values must agree
to the rounding of the float64 sums.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import ddp_fit_script as script
import pytest
import torch
from reference_knn import reference_knn_accuracy

from rmqm_callback import score
from rmqm_callback.functional import alpha_req, knn_accuracy, rankme
from rmqm_callback.keys import (
    KNN_ACCURACY_KEY,
    LOGGED_QUANTITIES,
    SECONDS_KEY,
    SPECTRAL_QUANTITIES,
    callback_key,
    metric_key,
    se_key,
)

SCRIPT = Path(script.__file__).resolve()
REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2
TIMEOUT_S = 120
#: the logged values compared with the single-process score
COMPARED = ("RMQM", "D", "D_RC", "P_RC")
RELATIVE_TOLERANCE = 1e-10
SYNC_DIST_WARNING = "It is recommended to use `self.log("


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_fit(case: str, out_dir: Path, namespace: str = "pytorch_lightning") -> tuple[int, str, float]:
    """Run the DDP fit of ``case``; return its exit code, its output (both ranks) and its wall time.

    The script runs in its own process group, which is killed as a whole on timeout (rank 1 is a
    child of rank 0 and would otherwise outlive it).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="default",
    )
    for name in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "GLOBAL_RANK", "RANK", "PL_GLOBAL_SEED"):
        env.pop(name, None)
    log_path = out_dir / "output.log"
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(out_dir), case, str(WORLD_SIZE), namespace],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(out_dir),
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            output = log_path.read_text(errors="replace")
            pytest.fail(f"DDP fit of case {case!r} hung (no exit within {TIMEOUT_S} s). Output:\n{output[-6000:]}")
    elapsed = time.perf_counter() - start
    # rank 1 may only still be around if rank 0 died early: do not leave it behind
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return code, log_path.read_text(errors="replace"), elapsed


#: (case, namespace) of every DDP fit: each case under pytorch_lightning, the odd probe under lightning.pytorch too
FITS = [*((case, "pytorch_lightning") for case in script.CASES), ("odd", "lightning.pytorch")]


@pytest.fixture(scope="module", params=FITS, ids=[f"{case}-{namespace}" for case, namespace in FITS])
def ddp_fit(request, tmp_path_factory):
    """One real 2-process DDP fit per case: the ranks' records, output, final weights."""
    case, namespace = request.param
    out_dir = tmp_path_factory.mktemp(f"ddp_{case}_{namespace}")
    code, output, elapsed = _run_fit(case, out_dir, namespace)
    assert code == 0, f"DDP fit of case {case!r} exited with {code}. Output:\n{output[-6000:]}"
    records = {}
    for rank in range(WORLD_SIZE):
        path = out_dir / f"metrics_rank{rank}.json"
        assert path.exists(), f"rank {rank} wrote no metrics in case {case!r}. Output:\n{output[-6000:]}"
        records[rank] = json.loads(path.read_text())
    weights = {
        rank: torch.load(out_dir / f"model_rank{rank}.pt", map_location="cpu", weights_only=True)
        for rank in range(WORLD_SIZE)
    }
    for record in records.values():
        assert record["trainer"] == f"{namespace}.trainer.trainer.Trainer", record["trainer"]
    return {"case": case, "records": records, "output": output, "elapsed": elapsed, "weights": weights}


def _expected_keys(case: str) -> set[str]:
    names = [alteration.name for alteration in script.alterations()]
    per_alteration = {metric_key("rmqm", name, q) for name in names for q in (*LOGGED_QUANTITIES, SECONDS_KEY)}
    labelled = {callback_key("rmqm", KNN_ACCURACY_KEY)} if case == "int" else set()  # labelled validation data
    return per_alteration | {callback_key("rmqm", quantity) for quantity in SPECTRAL_QUANTITIES} | labelled


def _same(a: float, b: float) -> bool:
    """Bit-equal floats, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(scope="module")
def single_process_scores(ddp_fit):
    """``score()`` of the final rank-0 weights on the case's probe, in this one process."""
    model = script.TinyClassifier()
    model.load_state_dict(ddp_fit["weights"][0])
    probe = script.reference_probe(ddp_fit["case"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each DDP process
    try:
        return {
            alteration.name: {
                key: float(value)
                for key, value in score(model, probe, alteration, batch_size=script.BATCH_SIZE).items()
            }
            for alteration in script.alterations(ddp_fit["case"])
        }
    finally:
        torch.set_num_threads(threads)


def test_ddp_launch_ran_two_gloo_processes_without_sync_warning(ddp_fit):
    records = ddp_fit["records"]
    assert sorted(records) == list(range(WORLD_SIZE))
    for rank, record in records.items():
        assert record["rank"] == rank
        assert record["world_size"] == WORLD_SIZE
        assert record["backend"] == "gloo"
    assert records[0]["pid"] != records[1]["pid"]
    assert ddp_fit["elapsed"] < TIMEOUT_S
    assert SYNC_DIST_WARNING not in ddp_fit["output"], ddp_fit["output"][-6000:]


def test_ddp_ranks_hold_the_same_final_weights(ddp_fit):
    weights = ddp_fit["weights"]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_ddp_every_rank_logs_every_key_with_the_same_value(ddp_fit):
    records = ddp_fit["records"]
    for rank, record in records.items():
        assert set(record["metrics"]) == _expected_keys(ddp_fit["case"]), f"rank {rank}"
        assert set(record["dtypes"].values()) == {"torch.float64"}, record["dtypes"]
    for key, value in records[0]["metrics"].items():
        other = records[1]["metrics"][key]
        assert _same(value, other), f"{key}: rank 0 logged {value!r}, rank 1 logged {other!r}"
    probes = len(script.reference_probe(ddp_fit["case"]))
    for rank, record in records.items():
        assert set(record["last_results"]) == {alteration.name for alteration in script.alterations()}
        for name, results in record["last_results"].items():
            # each probe counted once over all ranks: no repeated or padded probes, none left out
            assert results["num_probes"] == probes, f"rank {rank} {name}: {results['num_probes']} != {probes}"


def test_ddp_logged_values_equal_single_process_score(ddp_fit, single_process_scores):
    for rank, record in ddp_fit["records"].items():
        for name, expected in single_process_scores.items():
            for quantity in COMPARED:
                key = metric_key("rmqm", name, quantity)
                logged, reference = record["metrics"][key], expected[quantity]
                assert not math.isnan(reference), f"{key}: the reference is NaN"
                assert math.isclose(logged, reference, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0), (
                    f"case {ddp_fit['case']!r} rank {rank} {key}: logged {logged!r}, single-process {reference!r}"
                    f" (relative difference {abs(logged - reference) / max(abs(reference), 1e-300):.3g})"
                )


def test_ddp_standard_errors_equal_single_process_score(ddp_fit, single_process_scores):
    for rank, record in ddp_fit["records"].items():
        for name, expected in single_process_scores.items():
            for quantity in ("D", "D_RC", "P_RC"):
                key = metric_key("rmqm", name, se_key(quantity))
                logged, reference = record["metrics"][key], expected[f"{quantity}_se"]
                if math.isnan(reference):  # a single probe has no standard error
                    assert math.isnan(logged), f"rank {rank} {key}: logged {logged!r}, single-process NaN"
                else:
                    assert math.isclose(logged, reference, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0), (
                        f"rank {rank} {key}: logged {logged!r}, single-process {reference!r}"
                    )


def test_ddp_rankme_and_alpha_req_equal_the_functional_ones_on_the_clean_probe(ddp_fit):
    model = script.TinyClassifier().eval()
    model.load_state_dict(ddp_fit["weights"][0])
    probe = script.reference_probe(ddp_fit["case"])
    with torch.no_grad():  # the callback embeds the clean level block by block, as here
        clean = torch.cat([model(block) for block in probe.split(script.BATCH_SIZE)])
    for rank, record in ddp_fit["records"].items():
        for quantity, function in (("RankMe", rankme), ("alpha_ReQ", alpha_req)):
            logged = record["metrics"][callback_key("rmqm", quantity)]
            if len(probe) < 2:  # no spectrum of a single representation
                assert math.isnan(logged), f"rank {rank} {quantity}: {logged!r}"
                continue
            reference = float(function(clean))
            assert math.isclose(logged, reference, rel_tol=1e-12), f"rank {rank} {quantity}: {logged!r}, {reference!r}"


def test_ddp_knn_accuracy_of_the_labelled_int_probe_equals_the_single_process_one(ddp_fit):
    if ddp_fit["case"] != "int":
        pytest.skip("only the int probe (the first validation samples) has labels")
    model = script.TinyClassifier().eval()
    model.load_state_dict(ddp_fit["weights"][0])
    probe, labels = script.reference_probe("int"), script.val_data()[1][: script.INT_PROBE]
    with torch.no_grad():  # blocks 0 and 2 on rank 0, block 1 on rank 1: uneven shards
        clean = torch.cat([model(block) for block in probe.split(script.BATCH_SIZE)])
    reference = knn_accuracy(clean, labels).item()
    assert reference == reference_knn_accuracy(clean.double().numpy(), labels.numpy(), 1)
    for rank, record in ddp_fit["records"].items():
        assert record["metrics"][callback_key("rmqm", KNN_ACCURACY_KEY)] == reference, f"rank {rank}"


def test_when_process_0_cannot_take_the_probe_every_process_fails_instead_of_waiting(tmp_path):
    code, output, elapsed = _run_fit(script.FAILING_CASE, tmp_path)
    assert code != 0 and elapsed < TIMEOUT_S
    message = "RMQMCallback(probe=20) could not take the first samples of the validation data"
    assert "[rank0]" in output and "[rank1]" in output, output[-3000:]
    for rank in ("rank0", "rank1"):  # the same error raised on both ranks, not a hang on rank 1
        assert any(line.startswith(f"[{rank}]") and message in line for line in output.splitlines()), output[-3000:]


def test_when_only_process_1_refuses_the_set_up_every_process_stops_with_a_message(tmp_path):
    # rank 1's guest pass is slow past its limit, rank 0's is not: rank 0 must not go on to train alone
    code, output, elapsed = _run_fit(script.SLOW_RANK_CASE, tmp_path)
    assert code != 0 and elapsed < TIMEOUT_S
    lines = output.splitlines()
    refused = f"over its limit of {script.SLOW_RANK_LIMIT_S:g} s"
    assert any(line.startswith("[rank1]") and refused in line for line in lines), output[-3000:]
    elsewhere = "RefusedElsewhere: RMQMCallback: process(es) [1] of 2 refused the set-up before training"
    assert any(line.startswith("[rank0]") and elsewhere in line for line in lines), output[-3000:]
    assert not (tmp_path / "metrics_rank0.json").exists()  # rank 0 did not train


def test_ddp_int_probe_is_the_first_validation_samples_in_order():
    # the reference of the int case must be what the callback takes: the first n validation samples
    inputs, _ = script.val_data()
    probe = script.reference_probe("int")
    assert script.probe_for("int") == script.INT_PROBE == len(probe)
    assert torch.equal(probe, inputs[: script.INT_PROBE])
    # and the odd tensor probe really is odd-sized, split 3/2 across the two ranks
    odd = len(script.reference_probe("odd"))
    blocks = -(-odd // script.BATCH_SIZE)
    assert odd % script.BATCH_SIZE != 0 and odd % WORLD_SIZE != 0
    assert (len(range(0, blocks, WORLD_SIZE)), len(range(1, blocks, WORLD_SIZE))) == (3, 2)
    assert len(script.reference_probe("one")) < WORLD_SIZE
