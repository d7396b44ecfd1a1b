"""Real torch.distributed (gloo, CPU) runs of the metrics equal one process.

``RMQM`` in a 2-process group; ``KNNAccuracy`` and the callback's shared clean-level state in the
same 2-process run and in a 1-process group: each rank holds the probe blocks ``rank, rank +
world_size, ...`` (uneven shards, a rank with none) and updates them in reverse order, and every
rank must compute the single-process ``knn_accuracy`` and the independent brute force exactly.
"""

import datetime
import math
import os
import socket
import time
import traceback
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from reference_knn import reference_knn_accuracy, tied_representations

WORLD_SIZE = 2
TIMEOUT_S = 120

#: name -> (convention, number of probes, L, d, shard sizes of rank 0 and rank 1)
SCENARIOS = {
    "uneven-paper": ("paper", 11, 6, 4, (8, 3)),
    "uneven-reference": ("reference", 11, 6, 4, (3, 8)),
    "rank1-empty": ("paper", 7, 5, 3, (7, 0)),
    "rank0-empty-reference": ("reference", 7, 5, 3, (0, 7)),
    # rank 1 never calls update at all: its per-level states keep their empty default shape
    "rank1-never-updates": ("paper", 7, 5, 3, (7, 0)),
    # probes that agree to 9 digits: standard errors must survive merging across processes
    "nearly-identical": ("paper", 10, 6, 4, (6, 4)),
}


def _trajectories(n: int, levels: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
    steps = 0.3 * torch.randn(n, levels - 1, d, generator=g, dtype=torch.float64)
    steps[:, 1] = 0  # a repeated level: zero distances, left-out terms
    x = torch.cat([x, x + steps.cumsum(dim=1)], dim=1)
    x[0] = x[0, :1]  # a collapsed probe, left out of both spike components
    return x


def _scenario_trajectories(name: str) -> torch.Tensor:
    _convention, n, levels, d, _sizes = SCENARIOS[name]
    x = _trajectories(n, levels, d, seed=sum(map(ord, name)))
    if name == "nearly-identical":
        g = torch.Generator().manual_seed(0)
        x = x[1:2].repeat(n, 1, 1) + 1e-9 * torch.randn(n, levels, d, generator=g, dtype=torch.float64)
    return x


def _shard(name: str, rank: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """This rank's disjoint shard, updated in chunks of at most 3."""
    sizes = SCENARIOS[name][4]
    x = _scenario_trajectories(name)
    start = sum(sizes[:rank])
    shard = x[start : start + sizes[rank]]
    chunks = [(k, min(k + 3, len(shard))) for k in range(0, len(shard), 3)]
    if not chunks and not name.endswith("never-updates"):
        chunks = [(0, 0)]  # an empty (0, L, d) update; the "never-updates" rank makes none at all
    return shard, chunks


def _run_scenarios(rank: int) -> dict:
    from rmqm_callback import RMQM, RMQMCollapseWarning

    results = {}
    for name, (convention, *_rest) in SCENARIOS.items():
        metric = RMQM(convention=convention)
        shard, chunks = _shard(name, rank)
        for start, stop in chunks:
            metric.update(shard[start:stop])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RMQMCollapseWarning)
            computed = metric.compute()
        curves = metric.curves()
        # compute and curves sync and then unsync: local states are the shard's own again
        local = float(metric.d_moments[0])  # probes counted on this process
        results[name] = {
            "compute": {key: value.clone() for key, value in computed.items()},
            "curves": {key: value.clone() for key, value in curves.items()},
            "local_probes": local,
        }
    results["knn"] = _run_knn(rank)  # in the same 2-process run
    return results


# ------------------------------------------------------------------ k-NN: KNNAccuracy, the clean-level state

#: probes per block of the k-NN scenarios
BLOCK = 4
#: name -> (number of probes, k, label dtype); the tied data has 3 classes
KNN_SCENARIOS = {
    "uneven-int32": (29, 3, torch.int32),
    "uneven-uint8-k1": (23, 1, torch.uint8),
    "bool-labels": (18, 2, torch.bool),
    "one-block": (4, 2, torch.int64),  # rank 1 of 2 holds no block and never updates
}


def scenario_probe(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, dtype = KNN_SCENARIOS[name]
    x, labels = tied_representations(n, seed=len(name))
    return x, (labels % 2 if dtype == torch.bool else labels).to(dtype)


def _run_knn(rank: int) -> dict:
    from rmqm_callback import KNNAccuracy
    from rmqm_callback.metrics._clean_level import CleanLevelScores

    world_size = dist.get_world_size()
    results = {}
    for name, (n, k, _) in KNN_SCENARIOS.items():
        x, labels = scenario_probe(name)
        knn, clean = KNNAccuracy(k=k), CleanLevelScores(spectral=True, knn=k)
        mine = list(range(rank, -(-n // BLOCK), world_size))
        for block in reversed(mine):  # this rank's shard, last block first
            rows = torch.arange(block * BLOCK, min((block + 1) * BLOCK, n))
            knn.update(x[rows].float(), labels[rows], rows)
            clean.update(x[rows], rows, labels[rows])
        results[name] = {"knn": knn.compute(), "clean": clean.compute(), "local": len(knn.rows)}
    return results


def _worker(rank: int, port: int, out_dir: str, world_size: int = WORLD_SIZE, run=_run_scenarios) -> None:
    """One rank: ``run(rank)`` inside a gloo group of ``world_size`` processes, its results saved."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=TIMEOUT_S / 2)
        )
        results = run(rank)
        # results first, then tear down together: a rank that leaves early can abort the other's gloo threads
        path = os.path.join(out_dir, f"rank{rank}.pt")
        torch.save(results, path + ".tmp")
        os.replace(path + ".tmp", path)
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        with open(os.path.join(out_dir, f"rank{rank}.error"), "w") as handle:
            handle.write(traceback.format_exc())
        raise


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(out_dir, world_size: int = WORLD_SIZE, run=_run_scenarios) -> str | None:
    """Run the ranks once; ``None`` when every rank wrote its results, else what went wrong."""
    context = mp.start_processes(
        _worker, args=(_free_port(), str(out_dir), world_size, run), nprocs=world_size, join=False,
        start_method="spawn",
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    problem = None
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                problem = f"the {world_size}-process run did not finish within {TIMEOUT_S} s"
                break
    except mp.ProcessRaisedException as error:
        problem = f"a rank raised:\n{error}"
    except mp.ProcessExitedException as error:
        errors = "".join(path.read_text() for path in out_dir.glob("*.error"))
        problem = f"a rank exited: {error}\n{errors}"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    if problem is not None and list(out_dir.glob("*.error")):
        pytest.fail(problem)  # a Python error in a rank is a real failure: no retry
    written = all((out_dir / f"rank{rank}.pt").exists() for rank in range(world_size))
    if problem is not None and not written:
        return problem
    return None  # all results written (a crash inside gloo's teardown after that does not matter here)


def run_ranks(tmp_path_factory, world_size: int = WORLD_SIZE, run=_run_scenarios) -> list:
    """Every rank's results of ``run(rank)`` in a real gloo group of ``world_size`` processes (one retry)."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    problems = []
    for attempt in range(2):  # one retry, for a lost port race or a transport failure of the machine
        out_dir = tmp_path_factory.mktemp(f"ddp{attempt}")
        problem = _launch(out_dir, world_size, run)
        if problem is None:
            return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(world_size)]
        problems.append(problem)
    pytest.fail("\n".join(problems))


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    return run_ranks(tmp_path_factory)


def _single_process(name: str) -> tuple[dict, dict]:
    from rmqm_callback import RMQM, RMQMCollapseWarning

    convention = SCENARIOS[name][0]
    metric = RMQM(convention=convention)
    for rank in range(WORLD_SIZE):
        shard, chunks = _shard(name, rank)
        for start, stop in chunks:
            metric.update(shard[start:stop])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMQMCollapseWarning)
        return metric.compute(), metric.curves()


def _assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, what
    for a, b in zip(got.reshape(-1).tolist(), want.reshape(-1).tolist()):
        if math.isnan(b):
            assert math.isnan(a), what
        elif math.isinf(b):
            assert a == b, what
        else:
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), f"{what}: {a} != {b}"


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("rank", range(WORLD_SIZE))
def test_two_processes_equal_one_process(ddp_results, name, rank):
    computed, curves = _single_process(name)
    result = ddp_results[rank][name]
    assert set(result["compute"]) == set(computed)
    for key, value in computed.items():
        _assert_same(result["compute"][key], value, f"compute()[{key!r}]")
    assert set(result["curves"]) == set(curves)
    for key, value in curves.items():
        _assert_same(result["curves"][key].to(value.dtype), value, f"curves()[{key!r}]")
    assert float(result["compute"]["num_probes"]) == SCENARIOS[name][1]
    assert result["local_probes"] == SCENARIOS[name][4][rank]


def test_scenarios_exercise_left_out_probes():
    computed, _ = _single_process("uneven-paper")
    assert float(computed["D_RC_left_out"]) >= 1 and float(computed["P_RC_left_out"]) >= 1


def test_nearly_identical_scenario_has_the_exact_standard_errors():
    from reference_impl import reference_rmqm
    from test_functional import SE_KEYS, assert_matches

    computed, _ = _single_process("nearly-identical")
    assert_matches(computed, reference_rmqm(_scenario_trajectories("nearly-identical").numpy()), SE_KEYS, rel=1e-6)


@pytest.fixture(scope="module", params=[1, 2], ids=["1-process", "2-processes"])
def gloo_results(request, tmp_path_factory):
    if request.param == 1:
        return 1, run_ranks(tmp_path_factory, 1, _run_knn)
    return 2, [results["knn"] for results in request.getfixturevalue("ddp_results")]  # the run above


@pytest.mark.parametrize("name", list(KNN_SCENARIOS))
def test_every_rank_computes_the_single_process_knn_accuracy(gloo_results, name):
    from rmqm_callback.functional import knn_accuracy, rankme

    world_size, ranks = gloo_results
    n, k, _ = KNN_SCENARIOS[name]
    x, labels = scenario_probe(name)
    expected = knn_accuracy(x, labels, k).item()
    assert expected == reference_knn_accuracy(x.numpy(), labels.to(torch.int64).numpy(), k)
    for rank, results in enumerate(ranks):
        result = results[name]
        assert result["knn"].item() == expected, f"rank {rank} of {world_size}"
        assert result["clean"]["knn_accuracy"].item() == expected, f"rank {rank} of {world_size}"
        assert result["clean"]["RankMe"].item() == rankme(x).item()
        assert result["local"] == len(range(rank, -(-n // BLOCK), world_size))  # compute leaves its shard
