"""GaussianNoise keeps altered inputs across evaluations (cache_mib): same numbers, bounded memory."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from rmqm_callback import GaussianNoise, score

LEVELS = 6


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh())


def _probe(seed: int = 1, n: int = 40) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def _scores(noise: GaussianNoise, probe: torch.Tensor, batch_size: int = 16) -> dict:
    return score(_model(), probe, noise, batch_size=batch_size, knn=False)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[key], b[key]) for key in a)


# 40 probes x 5 altered levels x 16 floats x 4 bytes = 12,800 bytes (+ clean blocks and the guest pass)
@pytest.mark.parametrize("cache_mib", [1.0, 0.006, 1e-6, 0.0])  # all, part, none fit; off
def test_numbers_are_bit_identical_with_the_cache_on_or_off_and_across_evaluations(cache_mib):
    expected = _scores(GaussianNoise(levels=LEVELS, cache_mib=0), _probe())
    noise = GaussianNoise(levels=LEVELS, cache_mib=cache_mib)
    for _ in range(3):
        assert _same(_scores(noise, _probe()), expected)
        assert noise.cache_nbytes <= cache_mib * 2**20
    if cache_mib == 1.0:
        assert noise._cache.hits > 0 and noise.cache_nbytes > 12_800
    if cache_mib == 0.006:
        assert 0 < noise.cache_nbytes < 12_800 and noise._cache.hits > 0
    if cache_mib <= 1e-6:
        assert noise.cache_nbytes == 0 and noise._cache.hits == 0


def test_a_changed_probe_is_altered_anew():
    noise = GaussianNoise(levels=LEVELS, cache_mib=1)
    _scores(noise, _probe(1))
    changed = _probe(1)
    changed[20] = 0.5  # one probe of the second block
    assert _same(_scores(noise, changed), _scores(GaussianNoise(levels=LEVELS, cache_mib=0), changed))
    other = _probe(2)
    assert _same(_scores(noise, other), _scores(GaussianNoise(levels=LEVELS, cache_mib=0), other))


def test_a_changed_dtype_or_shape_empties_the_cache_and_a_write_into_a_kept_input_is_detected():
    noise, reference = GaussianNoise(levels=LEVELS, cache_mib=1), GaussianNoise(levels=LEVELS, cache_mib=0)
    x, indices = _probe()[:8], torch.arange(8)
    kept = noise.alter(x, indices, 3)
    assert noise.alter(x, indices, 3) is kept
    kept.add_(1.0)  # a model that writes into its input
    assert torch.equal(noise.alter(x, indices, 3), reference.alter(x, indices, 3))
    assert torch.equal(noise.alter(x.double(), indices, 3), reference.alter(x.double(), indices, 3))
    assert noise._cache._blocks and all(b.clean.dtype == torch.float64 for b in noise._cache._blocks.values())
    flat = x.flatten(1)
    assert torch.equal(noise.alter(flat, indices, 3), reference.alter(flat, indices, 3))
    assert all(b.clean.dim() == 2 for b in noise._cache._blocks.values())


def test_indices_changed_in_place_are_read_anew():
    noise, reference = GaussianNoise(levels=LEVELS, cache_mib=1), GaussianNoise(levels=LEVELS, cache_mib=0)
    x, indices = _probe()[:8], torch.arange(8)
    noise.alter(x, indices, 3)
    indices.add_(8)  # the same tensor object now names probes 8..15
    assert torch.equal(noise.alter(x, indices, 3), reference.alter(x, torch.arange(8, 16), 3))
    indices[0] = 30  # no longer a range: no kept level may be used
    assert torch.equal(noise.alter(x, indices, 3), reference.alter(x, indices.clone(), 3))


def test_a_changed_device_empties_the_cache():
    noise = GaussianNoise(levels=LEVELS, cache_mib=1)
    x, indices = _probe()[:8], torch.arange(8)
    noise.alter(x, indices, 2)
    context = noise._cache._context
    noise._cache._block(x.to("meta"), 0, context[0])  # as a lookup from another device would
    assert noise._cache.nbytes == 0 and not noise._cache._blocks


def test_copies_start_empty_and_cache_mib_is_recorded_but_not_part_of_the_settings():
    noise = GaussianNoise(levels=LEVELS, cache_mib=2)
    noise.alter(_probe()[:4], torch.arange(4), 1)
    for twin in (copy.deepcopy(noise), pickle.loads(pickle.dumps(noise))):
        assert twin.cache_nbytes == 0 and twin.cache_mib == 2
    assert noise.init_args()["cache_mib"] == 2 and "cache_mib" not in repr(noise)
    noise.clear_cache()
    assert noise.cache_nbytes == 0


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match="cache_mib"):
        GaussianNoise(cache_mib=-1)
