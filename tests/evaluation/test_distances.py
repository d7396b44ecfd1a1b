"""A trajectory's distance series, measured a chunk of levels at a time, equal the level-by-level ones bit for bit."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from rmqm_callback.evaluation._distances import TrajectoryDistances
from rmqm_callback.functional.rmqm import prepare_embeddings


def out_of_place_prepared(embeddings: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``prepare_embeddings`` as first written: a new tensor at every step, nothing divided in place."""
    if not normalize:
        return embeddings.to(torch.float64)
    if embeddings.dtype == torch.float64:
        largest = embeddings.abs().amax(dim=-1, keepdim=True)
        embeddings = embeddings / torch.where(largest > 0, largest, torch.ones_like(largest))
    else:
        embeddings = embeddings.to(torch.float64)
    norm = torch.linalg.vector_norm(embeddings, dim=-1, keepdim=True)
    return embeddings / torch.where(norm > 0, norm, torch.ones_like(norm))


def level_by_level(levels: list[torch.Tensor], normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """What the stream computed before chunking: one level at a time, stacked along dim 1."""
    phis = [out_of_place_prepared(level, normalize) for level in levels]
    to_original = [torch.linalg.vector_norm(phi - phis[0], dim=-1) for phi in phis[1:]]
    to_previous = [torch.linalg.vector_norm(phi - before, dim=-1) for before, phi in itertools.pairwise(phis)]
    return torch.stack(to_original, dim=1), torch.stack(to_previous, dim=1)


def trajectory(n: int, d: int, num_levels: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(n, d, generator=generator, dtype=torch.float64)
    steps = [start + 0.05 * j * torch.randn(n, d, generator=generator, dtype=torch.float64) for j in range(num_levels)]
    return [step.to(dtype) for step in steps]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize(("n", "d", "num_levels"), [(1, 1, 3), (5, 3, 10), (64, 128, 100), (7, 33, 17)])
@pytest.mark.parametrize("chunk_bytes", [1, 4096, 2**20, 2**30])
def test_chunks_of_any_size_give_the_level_by_level_series_bit_for_bit(dtype, normalize, n, d, num_levels, chunk_bytes):
    levels = trajectory(n, d, num_levels, dtype)
    series = TrajectoryDistances(normalize, chunk_bytes=chunk_bytes)
    for level in levels:
        series.add(level)
    do, dp = series.result()
    expected_do, expected_dp = level_by_level(levels, normalize)
    assert do.shape == dp.shape == (n, num_levels - 1)
    assert do.is_contiguous() and dp.is_contiguous()  # later reductions sum in the same order as before
    assert torch.equal(do, expected_do)
    assert torch.equal(dp, expected_dp)
    assert series.levels == num_levels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("normalize", [True, False])
def test_prepared_in_place_equals_the_out_of_place_formula_and_leaves_the_input_alone(dtype, normalize):
    generator = torch.Generator().manual_seed(3)
    scales = 10.0 ** torch.randint(-3, 4, (40, 1), generator=generator)
    embeddings = (torch.randn(40, 24, generator=generator, dtype=torch.float64) * scales).to(dtype)
    embeddings[0] = 0  # a zero vector stays zero
    before = embeddings.clone()
    assert torch.equal(prepare_embeddings(embeddings, normalize), out_of_place_prepared(embeddings, normalize))
    assert torch.equal(embeddings, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prepared_embeddings_that_require_grad_backpropagate_as_the_out_of_place_formula(dtype):
    """``functional.rmqm`` of a tensor in a graph stays differentiable: nothing autograd needs is divided in place."""
    generator = torch.Generator().manual_seed(4)
    embeddings = torch.randn(6, 5, generator=generator, dtype=dtype)
    weights = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    gradients = []
    for prepare in (prepare_embeddings, out_of_place_prepared):
        leaf = embeddings.clone().requires_grad_(True)
        (prepare(leaf, True) * weights).sum().backward()
        gradients.append(leaf.grad)
    assert torch.equal(gradients[0], gradients[1])


def test_levels_added_after_a_result_extend_the_series():
    levels = trajectory(4, 6, 30, torch.float32)
    series = TrajectoryDistances(True, chunk_bytes=3 * 8 * 4 * 6)
    for level in levels[:3]:
        series.add(level)
    series.result()  # a partial chunk of two levels sizes the buffers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not by torch resizing an out= view, which would warn
        for level in levels[3:]:
            series.add(level)  # then chunks of three need larger ones
        do, dp = series.result()
    expected_do, expected_dp = level_by_level(levels, True)
    assert torch.equal(do, expected_do) and torch.equal(dp, expected_dp)


def test_representations_that_require_grad_are_measured_like_detached_ones():
    """A custom alteration may yield representations still attached to a graph; distances need none."""
    levels = trajectory(5, 8, 9, torch.float32)
    attached = [level.clone().requires_grad_(True) * 1.0 for level in levels]
    series = TrajectoryDistances(True, chunk_bytes=3 * 8 * 5 * 8)
    for level in attached:
        series.add(level)
    do, dp = series.result()
    expected_do, expected_dp = level_by_level(levels, True)
    assert not do.requires_grad and torch.equal(do, expected_do) and torch.equal(dp, expected_dp)


def test_a_chunk_holds_at_most_its_budget_of_levels():
    levels = trajectory(8, 16, 50, torch.float32)
    series = TrajectoryDistances(True, chunk_bytes=3 * 8 * 8 * 16)  # three levels of (8, 16) float64
    most = 0
    for level in levels:
        series.add(level)
        most = max(most, len(series._pending))
    assert most == 2  # the third level pending is measured at once
    assert torch.equal(series.result()[0], level_by_level(levels, True)[0])


@pytest.mark.parametrize("inside", [True, False])
def test_inference_tensors_in_or_out_of_inference_mode_give_the_same_series(inside):
    """The stream embeds under inference mode and measures outside it; either way works, with the same numbers."""
    levels = trajectory(6, 10, 12, torch.float32)
    with torch.inference_mode():
        frozen = [level.clone() for level in levels]  # inference tensors, as the encoder's outputs are
    series = TrajectoryDistances(True, chunk_bytes=5 * 8 * 6 * 10)
    with torch.inference_mode(inside):
        for level in frozen:
            series.add(level)
        do, dp = series.result()
    expected_do, expected_dp = level_by_level(levels, True)
    assert torch.equal(do, expected_do) and torch.equal(dp, expected_dp)


def test_fewer_than_two_levels_have_no_distances():
    series = TrajectoryDistances(True)
    series.add(torch.ones(3, 2))
    with pytest.raises(ValueError, match="at least 2 levels"):
        series.result()
