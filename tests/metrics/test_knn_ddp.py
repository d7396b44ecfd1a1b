"""``KNNAccuracy`` and the callback's shared clean-level state under real gloo groups of 1 and 2 processes.

Each rank holds the probe blocks ``rank, rank + world_size, ...`` (uneven shards, a rank with none)
and updates them in reverse order; every rank's ``compute`` must equal the single-process
``knn_accuracy`` of the whole probe, and the independent brute force, exactly (ties included).
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from reference_knn import reference_knn_accuracy, tied_representations
from test_metric_ddp import run_ranks

BLOCK = 4
#: name -> (number of probes, k, label dtype); the tied data has 3 classes
SCENARIOS = {
    "uneven-int32": (29, 3, torch.int32),
    "uneven-uint8-k1": (23, 1, torch.uint8),
    "bool-labels": (18, 2, torch.bool),
    "one-block": (4, 2, torch.int64),  # rank 1 of 2 holds no block and never updates
}


def scenario_probe(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, dtype = SCENARIOS[name]
    x, labels = tied_representations(n, seed=len(name))
    return x, (labels % 2 if dtype == torch.bool else labels).to(dtype)


def _run_knn(rank: int) -> dict:
    from rmqm_callback import KNNAccuracy
    from rmqm_callback.metrics._clean_level import CleanLevelScores

    world_size = dist.get_world_size()
    results = {}
    for name, (n, k, _) in SCENARIOS.items():
        x, labels = scenario_probe(name)
        knn, clean = KNNAccuracy(k=k), CleanLevelScores(spectral=True, knn=k)
        mine = list(range(rank, -(-n // BLOCK), world_size))
        for block in reversed(mine):  # this rank's shard, last block first
            rows = torch.arange(block * BLOCK, min((block + 1) * BLOCK, n))
            knn.update(x[rows].float(), labels[rows], rows)
            clean.update(x[rows], rows, labels[rows])
        results[name] = {"knn": knn.compute(), "clean": clean.compute(), "local": len(knn.rows)}
    return results


@pytest.fixture(scope="module", params=[1, 2], ids=["1-process", "2-processes"])
def gloo_results(request, tmp_path_factory):
    return request.param, run_ranks(tmp_path_factory, request.param, _run_knn)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_rank_computes_the_single_process_value(gloo_results, name):
    from rmqm_callback.functional import knn_accuracy, rankme

    world_size, ranks = gloo_results
    n, k, _ = SCENARIOS[name]
    x, labels = scenario_probe(name)
    expected = knn_accuracy(x, labels, k).item()
    assert expected == reference_knn_accuracy(x.numpy(), labels.to(torch.int64).numpy(), k)
    for rank, results in enumerate(ranks):
        result = results[name]
        assert result["knn"].item() == expected, f"rank {rank} of {world_size}"
        assert result["clean"]["knn_accuracy"].item() == expected, f"rank {rank} of {world_size}"
        assert result["clean"]["RankMe"].item() == rankme(x).item()
        assert result["local"] == len(range(rank, -(-n // BLOCK), world_size))  # compute leaves its shard
