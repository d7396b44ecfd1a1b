"""The RMQM torchmetrics Metric: accumulation, invariances, state, curves, plots and bad input."""

import math
import pickle
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_impl import distance_series, reference_curves, reference_rmqm
from rmqm_asserts import KEYS, SE_KEYS, assert_matches, nearly_identical, trajectories

from rmqm_callback import RMQM, RMQMCollapseWarning
from rmqm_callback.functional import rmqm
from rmqm_callback.functional.rmqm import _distance_statistics, _rmqm_compute

HYPOTHESIS = settings(max_examples=25, deadline=None)


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMQMCollapseWarning)
        return function(*args, **kwargs)


def _distances(x: torch.Tensor, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    do, dp = distance_series(x.numpy(), normalize)
    return torch.tensor(do, dtype=torch.float64), torch.tensor(dp, dtype=torch.float64)


# ------------------------------------------------------------------ update / compute / forward / reset


@pytest.mark.parametrize("convention", ["paper", "reference"])
def test_update_compute_equals_functional_and_reference(convention):
    x = trajectories(23, 7, 5, seed=11, repeats=1, collapsed=2)
    metric = RMQM(convention=convention)
    for chunk in (x[:5], x[5:6], x[6:6], x[6:]):
        metric.update(chunk)
    result = _quiet(metric.compute)
    assert_matches(result, _quiet(rmqm, x, convention=convention), KEYS[convention], rel=1e-12)
    assert_matches(result, reference_rmqm(x.numpy(), convention), KEYS[convention], rel=1e-9)
    assert float(result["num_probes"]) == 23


def test_forward_returns_the_batch_value_and_accumulates():
    x = trajectories(12, 6, 4, seed=2)
    metric = RMQM()
    for chunk in (x[:5], x[5:]):
        batch_value = metric(chunk)
        assert_matches(batch_value, rmqm(chunk), KEYS["paper"], rel=1e-12)
    assert_matches(metric.compute(), rmqm(x), KEYS["paper"], rel=1e-12)


def test_forward_with_another_number_of_levels_raises_and_keeps_the_state():
    x = trajectories(8, 6, 4, seed=2)
    metric = RMQM()
    metric(x)
    with pytest.raises(ValueError, match=r"L=5 levels, but earlier updates had L=6"):
        metric(trajectories(3, 5, 4, seed=3))
    assert_matches(metric.compute(), rmqm(x), KEYS["paper"], rel=1e-12)


def test_forward_with_distances():
    x = trajectories(9, 5, 3, seed=4)
    do, dp = _distances(x)
    metric = RMQM()
    assert_matches(metric(distances=(do[:4], dp[:4])), rmqm(x[:4]), KEYS["paper"], rel=1e-12)
    metric(distances=(do[4:], dp[4:]))
    assert_matches(metric.compute(), rmqm(x), KEYS["paper"], rel=1e-12)
    with pytest.raises(ValueError, match=r"L=4 levels, but earlier updates had L=5"):
        metric(distances=(do[:, :3], dp[:, :3]))
    assert_matches(metric.compute(), rmqm(x), KEYS["paper"], rel=1e-12)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric RMQM was called before")
def test_merge_state_adds_another_metric():
    x = trajectories(10, 5, 3, seed=5)
    a, b, empty = RMQM(), RMQM(), RMQM()
    a.update(x[:6])
    b.update(x[6:])
    a.merge_state(b)
    assert_matches(a.compute(), rmqm(x), KEYS["paper"], rel=1e-12)
    empty.merge_state(a)
    assert_matches(empty.compute(), rmqm(x), KEYS["paper"], rel=1e-12)
    other = RMQM()
    other.update(trajectories(2, 4, 3, seed=0))
    with pytest.raises(ValueError, match=r"L=4 levels, but earlier updates had L=5"):
        a.merge_state(other)
    assert_matches(a.compute(), rmqm(x), KEYS["paper"], rel=1e-12)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric RMQM was called before")
def test_reset_forgets_everything():
    metric = RMQM()
    metric.update(trajectories(5, 6, 3, seed=0))
    metric.reset()
    with pytest.raises(ValueError, match="at least one probe"):
        metric.compute()
    other = trajectories(4, 4, 3, seed=1)  # another L is fine after reset
    metric.update(other)
    assert_matches(metric.compute(), rmqm(other), KEYS["paper"], rel=1e-12)


def test_states_are_float64_and_do_not_grow_with_probes():
    metric = RMQM()
    metric.update(trajectories(3, 5, 4, seed=0, dtype=torch.float32))
    sizes = {name: tuple(value.shape) for name, value in metric.metric_state.items()}
    metric.update(trajectories(300, 5, 4, seed=1, dtype=torch.float32))
    assert {name: tuple(value.shape) for name, value in metric.metric_state.items()} == sizes
    assert all(value.dtype == torch.float64 for value in metric.metric_state.values())
    assert max(math.prod(shape) for shape in sizes.values()) == 3 * 4  # (count, sum, M2) x J at most


def test_update_with_distances_equals_update_with_embeddings():
    x = trajectories(15, 6, 4, seed=5, repeats=1, collapsed=1)
    for convention in ("paper", "reference"):
        by_embeddings, by_distances = RMQM(convention=convention), RMQM(convention=convention)
        by_embeddings.update(x[:9])
        by_embeddings.update(x[9:])
        do, dp = _distances(x)
        by_distances.update(distances=(do[:4], dp[:4]))
        by_distances.update(distances=(do[4:], dp[4:]))
        assert_matches(_quiet(by_distances.compute), _quiet(by_embeddings.compute), KEYS[convention], rel=1e-12)
        for key, value in by_distances.curves().items():
            torch.testing.assert_close(value, by_embeddings.curves()[key], rtol=1e-12, atol=0, equal_nan=True)


def test_mixing_distances_and_embeddings_updates():
    x = trajectories(10, 5, 3, seed=6)
    metric = RMQM()
    metric.update(x[:4])
    metric.update(distances=_distances(x[4:]))
    assert_matches(metric.compute(), rmqm(x), KEYS["paper"], rel=1e-12)


@pytest.mark.parametrize("chunk_sizes", [(50,), (1,) * 50, (7, 1, 20, 0, 22), (25, 25)])
def test_standard_errors_stay_exact_across_chunks_of_nearly_identical_probes(chunk_sizes):
    # merging chunk moments must not subtract large, nearly equal sums either
    x = nearly_identical(50, 1e-9)[torch.randperm(50, generator=torch.Generator().manual_seed(1))]
    metric = RMQM()
    start = 0
    for size in chunk_sizes:
        metric.update(x[start : start + size])
        start += size
    result = metric.compute()
    assert_matches(result, reference_rmqm(x.numpy()), SE_KEYS, rel=1e-6)
    curves = metric.curves()
    expected = reference_curves(x.numpy())
    for name in ("distance_to_original_se", "relative_change_to_previous_se"):
        got, want = curves[name][1:].tolist(), expected[name][1:]
        assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(got, want)), name


# ------------------------------------------------------------------ invariances (hypothesis)


@st.composite
def chunked_case(draw):
    n = draw(st.integers(1, 14))
    levels = draw(st.integers(3, 7))
    d = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    repeats = draw(st.integers(0, 1))
    collapsed = draw(st.integers(0, n))
    x = trajectories(n, levels, d, seed, repeats=repeats, collapsed=collapsed)
    # cut points with repeats give empty chunks
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    return x, [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


@HYPOTHESIS
@given(case=chunked_case(), convention=st.sampled_from(["paper", "reference"]), by_distances=st.booleans())
def test_any_chunking_gives_the_same_result(case, convention, by_distances):
    x, chunks = case
    metric = RMQM(convention=convention)
    do, dp = _distances(x)
    for start, stop in chunks:
        if by_distances:
            metric.update(distances=(do[start:stop], dp[start:stop]))
        else:
            metric.update(x[start:stop])
    if by_distances:  # the same distances unchunked: two ways of rounding tiny distances would differ more
        whole = _quiet(_rmqm_compute, _distance_statistics(do, dp, convention), convention)
    else:
        whole = _quiet(rmqm, x, convention=convention)
    assert_matches(_quiet(metric.compute), whole, KEYS[convention], rel=1e-12, abs_tol=1e-15)


@HYPOTHESIS
@given(case=chunked_case(), convention=st.sampled_from(["paper", "reference"]), data=st.data())
def test_probe_order_and_chunking_together(case, convention, data):
    x, chunks = case
    permutation = data.draw(st.permutations(list(range(x.shape[0]))))
    metric = RMQM(convention=convention)
    shuffled = x[list(permutation)]
    for start, stop in chunks:
        metric.update(shuffled[start:stop])
    assert_matches(
        _quiet(metric.compute), _quiet(rmqm, x, convention=convention), KEYS[convention], rel=1e-12, abs_tol=1e-15
    )


# ------------------------------------------------------------------ state_dict and pickling


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric RMQM was called before")
def test_state_dict_round_trip_when_persistent():
    x = trajectories(9, 6, 4, seed=7)
    metric = RMQM(convention="reference")
    metric.update(x[:5])
    metric.persistent(True)
    state = metric.state_dict()
    assert {"d_moments", "do_level_moments"} <= set(state)
    restored = RMQM(convention="reference")
    restored.load_state_dict(state)
    assert_matches(restored.compute(), metric.compute(), KEYS["reference"], rel=0)
    # the restored metric goes on accumulating
    metric.update(x[5:])
    restored.update(x[5:])
    assert_matches(restored.compute(), rmqm(x, convention="reference"), KEYS["reference"], rel=1e-12)


def test_states_are_not_in_the_state_dict_by_default():
    metric = RMQM()
    metric.update(trajectories(3, 4, 2, seed=0))
    assert "num_probes" not in metric.state_dict()


def test_pickle_mid_accumulation_and_continue():
    x = trajectories(12, 5, 3, seed=8)
    metric = RMQM()
    metric.update(x[:7])
    copy = pickle.loads(pickle.dumps(metric))
    copy.update(x[7:])
    metric.update(x[7:])
    assert_matches(copy.compute(), rmqm(x), KEYS["paper"], rel=1e-12)
    assert_matches(copy.compute(), metric.compute(), KEYS["paper"], rel=0)
    assert copy.convention == "paper" and copy.normalize is True


# ------------------------------------------------------------------ curves and plot


@pytest.mark.parametrize("convention", ["paper", "reference"])
def test_curves_match_per_level_means_of_the_reference(convention):
    x = trajectories(13, 7, 4, seed=9, repeats=1, collapsed=2)
    metric = RMQM(convention=convention)
    metric.update(x[:6])
    metric.update(x[6:])
    curves = metric.curves()
    expected = reference_curves(x.numpy(), convention)
    assert curves["level"].tolist() == list(range(1, 7))
    for name, values in expected.items():
        assert curves[name].shape == (6,), name
        torch.testing.assert_close(
            curves[name], torch.tensor(values, dtype=torch.float64), rtol=1e-9, atol=1e-12, equal_nan=True
        )
    # distance_to_original per level is the mean over probes of do_j
    do, _ = _distances(x)
    torch.testing.assert_close(curves["distance_to_original"], do.mean(dim=0), rtol=1e-12, atol=0)
    if convention == "reference":
        assert math.isnan(float(curves["relative_change_to_original"][0]))


def test_curves_before_any_update_raise():
    with pytest.raises(ValueError, match=r"curves\(\) needs at least one update"):
        RMQM().curves()


def test_plot_draws_three_panels():
    pytest.importorskip("matplotlib")
    metric = RMQM()
    metric.update(trajectories(6, 5, 3, seed=10))
    figure, axes = metric.plot(label="model")
    assert len(figure.axes) == 3 and len(axes) == 3
    line = axes[0].get_lines()[0]
    torch.testing.assert_close(
        torch.tensor(line.get_ydata(), dtype=torch.float64), metric.curves()["distance_to_original"]
    )
    strengths = torch.linspace(0, 1, 5, dtype=torch.float64)
    figure, axes = metric.plot(strengths=strengths)
    assert list(axes[0].get_lines()[0].get_xdata()) == pytest.approx(strengths[1:].tolist())
    with pytest.raises(ValueError, match=r"`strengths` must have one value per level \(L=5\), got 4"):
        metric.plot(strengths=strengths[:4])
    with pytest.raises(ValueError, match="must hold 3 axes, got 2"):
        metric.plot(ax=list(axes)[:2])


# ------------------------------------------------------------------ bad input


def test_changing_the_number_of_levels_between_updates_raises():
    metric = RMQM()
    metric.update(trajectories(3, 5, 2, seed=0))
    with pytest.raises(ValueError, match=r"L=6 levels, but earlier updates had L=5.*reset\(\)"):
        metric.update(trajectories(3, 6, 2, seed=0))
    do, dp = _distances(trajectories(3, 4, 2, seed=0))
    with pytest.raises(ValueError, match=r"L=4 levels, but earlier updates had L=5"):
        metric.update(distances=(do, dp))
    assert float(metric.compute()["num_probes"]) == 3


@pytest.mark.parametrize(
    ("embeddings", "error", "match"),
    [
        (torch.zeros(4, 5), ValueError, r"shape \(N, L, d\).*got shape \(4, 5\)"),
        (torch.zeros(1, 4, 5, 2), ValueError, r"got shape \(1, 4, 5, 2\)"),
        (torch.zeros(4, 2, 3), ValueError, r"at least L=3.*\(4, 2, 3\)"),
        (torch.zeros(4, 3, 2, dtype=torch.int32), TypeError, r"floating-point.*torch.int32"),
        (torch.tensor([[[0.0], [math.nan], [1.0]]]), ValueError, r"non-finite.*probe 0, level 1"),
        (torch.tensor([[[0.0], [1.0], [math.inf]]]), ValueError, r"non-finite.*probe 0, level 2"),
    ],
)
def test_bad_embeddings_raise(embeddings, error, match):
    metric = RMQM()
    with pytest.raises(error, match=match):
        metric.update(embeddings)
    assert float(metric.d_moments[0]) == 0  # no probe counted


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"`convention` must be one of \('paper', 'reference'\), got 'Paper'"):
        RMQM(convention="Paper")
    with pytest.raises(TypeError, match=r"`normalize` must be a bool, got 'yes'"):
        RMQM(normalize="yes")


def test_update_needs_exactly_one_input():
    metric = RMQM()
    with pytest.raises(ValueError, match="exactly one of `embeddings` or `distances`"):
        metric.update()
    x = trajectories(2, 4, 2, seed=0)
    with pytest.raises(ValueError, match="exactly one of `embeddings` or `distances`"):
        metric.update(x, distances=_distances(x))


@pytest.mark.parametrize(
    ("distances", "error", "match"),
    [
        (torch.zeros(2, 3), TypeError, r"\(do, dp\) pair"),
        ((torch.zeros(2, 3),), TypeError, r"\(do, dp\) pair"),
        ((torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3)), TypeError, r"do must be a floating \(n, J\)"),
        ((torch.zeros(2, 3), torch.zeros(6)), TypeError, r"dp must be a floating \(n, J\)"),
        ((torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, r"same shape.*\(2, 3\) and \(2, 4\)"),
        ((torch.zeros(2, 1), torch.zeros(2, 1)), ValueError, r"J >= 2"),
        ((torch.full((2, 3), math.nan), torch.zeros(2, 3)), ValueError, r"do must be finite and non-negative"),
        ((torch.zeros(2, 3), -torch.ones(2, 3)), ValueError, r"dp must be finite and non-negative"),
    ],
)
def test_bad_distances_raise(distances, error, match):
    with pytest.raises(error, match=match):
        RMQM().update(distances=distances)


def test_compute_without_probes_raises():
    metric = RMQM()
    with pytest.raises(ValueError, match="at least one probe"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The ``compute`` method of metric RMQM was called before")
        metric.compute()
    metric.update(torch.zeros(0, 5, 3))
    with pytest.raises(ValueError, match="at least one probe"):
        metric.compute()
