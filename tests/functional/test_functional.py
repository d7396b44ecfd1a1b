"""rmqm_callback.functional.rmqm against the independent float64 reference, hand cases, invariances."""

import math
import warnings

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference_impl import distance_series, reference_rmqm
from rmqm_asserts import KEYS, SE_KEYS, assert_matches, nearly_identical, trajectories

from rmqm_callback.functional import RMQMCollapseWarning, rmqm
from rmqm_callback.functional.rmqm import _trajectory_distances

HYPOTHESIS = settings(max_examples=25, deadline=None)








# ------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("convention", ["paper", "reference"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize(
    ("n", "levels", "d", "repeats", "collapsed"),
    [(1, 3, 2, 0, 0), (2, 3, 5, 0, 0), (17, 6, 8, 0, 0), (9, 12, 3, 2, 0), (11, 8, 4, 1, 3), (40, 20, 16, 3, 2)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference_on_random_trajectories(convention, normalize, n, levels, d, repeats, collapsed, seed):
    x = trajectories(n, levels, d, seed, repeats=repeats, collapsed=collapsed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMQMCollapseWarning)
        result = rmqm(x, convention=convention, normalize=normalize)
    expected = reference_rmqm(x.numpy(), convention=convention, normalize=normalize)
    assert_matches(result, expected, KEYS[convention], rel=1e-9)
    assert all(value.dtype == torch.float64 for value in result.values())
    if convention == "paper":
        assert "D_prev" not in result


def test_reference_counts_left_out_probes_in_both_conventions():
    # probe 0 stays put at level 2, probe 1 at level 1, probe 2 at every level
    x = torch.tensor(
        [
            [[0.0], [1.0], [1.0], [2.0]],  # do = 1, 1, 2; dp = 1, 0, 1
            [[0.0], [0.0], [1.0], [3.0]],  # do = 0, 1, 3; dp = 0, 1, 2
            [[5.0], [5.0], [5.0], [5.0]],  # collapsed
        ],
        dtype=torch.float64,
    )
    paper = rmqm(x, normalize=False)
    # paper D_RC: probe 0 terms (1, 0, 1/2); probe 1 terms (-, 1, 2/3); probe 2 none
    assert float(paper["D_RC"]) == pytest.approx(((1 + 0 + 0.5) / 3 + (1 + 2 / 3) / 2) / 2, rel=1e-12)
    assert float(paper["D_RC_left_out"]) == 1
    # paper P_RC (j = 2..J): probe 0 terms (-, |1 - 0| / 1); probe 1 terms (|1-0|/1, |2-1|/2)
    assert float(paper["P_RC"]) == pytest.approx((1.0 + 0.75) / 2, rel=1e-12)
    assert float(paper["P_RC_left_out"]) == 1
    with pytest.warns(RMQMCollapseWarning, match="All 3 probes were left out of P_RC"):
        reference = rmqm(x, convention="reference", normalize=False)
    # reference D_RC: probe 0 (|1-1|/1, |2-1|/1) = 0.5; probe 1 has 1/0 -> dropped; probe 2 0/0 -> dropped
    assert float(reference["D_RC"]) == pytest.approx(0.5, rel=1e-12)
    assert float(reference["D_RC_left_out"]) == 2
    # reference P_RC: probe 0 has |0-1|/1 then |1-0|/0 -> dropped; probe 1 0 -> 1 inf -> dropped
    assert math.isinf(float(reference["P_RC"]))
    assert float(reference["P_RC_left_out"]) == 3
    for result, convention in ((paper, "paper"), (reference, "reference")):
        assert_matches(result, reference_rmqm(x.numpy(), convention, normalize=False), KEYS[convention], 1e-12)


# ------------------------------------------------------------------ hand-computed cases


@pytest.mark.parametrize("num_steps", [2, 3, 7, 20])
@pytest.mark.parametrize("convention", ["paper", "reference"])
def test_linear_distances_have_harmonic_d_rc_and_zero_p_rc(num_steps, convention):
    c = torch.tensor([0.25, 1.0, 3.0], dtype=torch.float64)
    levels = torch.arange(num_steps + 1, dtype=torch.float64)
    x = (c[:, None] * levels[None, :])[..., None]  # (3, L, 1): do_j = j c, dp_j = c
    with pytest.warns(RMQMCollapseWarning, match=r"RMQM is \+inf"):
        result = rmqm(x, convention=convention, normalize=False)
    assert float(result["D"]) == pytest.approx(float(c.mean()) * (num_steps + 1) / 2, rel=1e-12)
    assert float(result["P_RC"]) == 0.0
    assert math.isinf(float(result["RMQM"])) and float(result["RMQM"]) > 0
    if convention == "paper":
        harmonic = sum(1 / j for j in range(1, num_steps + 1))
        assert float(result["D_RC"]) == pytest.approx(harmonic / num_steps, rel=1e-12)
    else:
        # pct_change of j c: 1/(j-1) for j = 2..J
        expected = sum(1 / (j - 1) for j in range(2, num_steps + 1)) / (num_steps - 1)
        assert float(result["D_RC"]) == pytest.approx(expected, rel=1e-12)
    assert float(result["D_RC_left_out"]) == 0 and float(result["P_RC_left_out"]) == 0
    # identical per-probe values: SE 0, up to the sqrt(eps) * mean rounding of the sum/sum-of-squares states
    assert float(result["D_RC_se"]) == pytest.approx(0.0, abs=1e-7 * float(result["D_RC"]))


@pytest.mark.parametrize("convention", ["paper", "reference"])
@pytest.mark.parametrize("normalize", [True, False])
def test_fully_collapsed_model(convention, normalize):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 1, 4, generator=g, dtype=torch.float64).expand(5, 6, 4).contiguous()
    with pytest.warns(RMQMCollapseWarning, match="collapsed") as record:
        result = rmqm(x, convention=convention, normalize=normalize)
    messages = " ".join(str(w.message) for w in record)
    assert "D_RC" in messages and "P_RC" in messages
    assert float(result["D"]) == 0.0
    assert math.isinf(float(result["D_RC"])) and math.isinf(float(result["P_RC"]))
    assert float(result["RMQM"]) == 0.0
    assert float(result["D_RC_left_out"]) == 5 and float(result["P_RC_left_out"]) == 5
    assert math.isnan(float(result["D_RC_se"])) and math.isnan(float(result["P_RC_se"]))
    assert float(result["D_se"]) == 0.0
    if convention == "reference":
        assert float(result["D_prev"]) == 0.0


def test_partly_collapsed_model_does_not_warn():
    x = trajectories(6, 5, 3, seed=4, collapsed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RMQMCollapseWarning)
        result = rmqm(x)
    assert float(result["D_RC_left_out"]) == 2 and float(result["P_RC_left_out"]) == 2
    assert math.isfinite(float(result["RMQM"]))


def test_doctest_example_values():
    trajectory = torch.tensor([[[0.0], [1.0], [3.0], [4.0]]])
    result = rmqm(trajectory, normalize=False)
    # do = (1, 3, 4), dp = (1, 2, 1)
    d, d_rc, p_rc = 8 / 3, (1 + 2 / 3 + 1 / 4) / 3, (1 / 2 + 1 / 1) / 2
    assert float(result["D"]) == pytest.approx(d, rel=1e-12)
    assert float(result["D_RC"]) == pytest.approx(d_rc, rel=1e-12)
    assert float(result["P_RC"]) == pytest.approx(p_rc, rel=1e-12)
    assert float(result["RMQM"]) == pytest.approx(math.log(1 + d + 1 / d_rc + 1 / p_rc), rel=1e-12)
    assert math.isnan(float(result["D_se"]))  # one probe: no standard error
    reference = rmqm(trajectory, normalize=False, convention="reference")
    # pct_change of do: (3-1)/1, (4-3)/3; of dp: (2-1)/1, (1-2)/2
    ref_d_rc, ref_p_rc = (2 + 1 / 3) / 2, (1 + 0.5) / 2
    assert float(reference["D_RC"]) == pytest.approx(ref_d_rc, rel=1e-12)
    assert float(reference["P_RC"]) == pytest.approx(ref_p_rc, rel=1e-12)
    assert float(reference["D_prev"]) == pytest.approx(4 / 3, rel=1e-12)
    assert float(reference["RMQM"]) == pytest.approx(math.log(1 + d + 4 / 3 + 1 / ref_d_rc + 1 / ref_p_rc), rel=1e-12)


def test_distances_are_differences_not_gram_formula_in_float32():
    # tiny steps on a large-norm vector: the |a|^2 + |b|^2 - 2ab shortcut loses these in float32
    base = torch.full((1, 1, 8), 1.0)
    steps = 1e-3 * torch.arange(1, 5, dtype=torch.float32)[None, :, None] * torch.eye(8)[0]
    x = torch.cat([base, base + steps], dim=1)
    result = rmqm(x, normalize=False)
    assert float(result["D"]) == pytest.approx(1e-3 * 2.5, rel=2e-4)


# ------------------------------------------------------------------ invariances (hypothesis)


@st.composite
def random_case(draw):
    n = draw(st.integers(1, 12))
    levels = draw(st.integers(3, 9))
    d = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    repeats = draw(st.integers(0, min(2, levels - 2)))
    collapsed = draw(st.integers(0, n))
    return trajectories(n, levels, d, seed, repeats=repeats, collapsed=collapsed)


def _quiet_rmqm(x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMQMCollapseWarning)
        return rmqm(x, **kwargs)


@HYPOTHESIS
@given(x=random_case(), convention=st.sampled_from(["paper", "reference"]), data=st.data())
def test_probe_order_does_not_matter(x, convention, data):
    permutation = data.draw(st.permutations(list(range(x.shape[0]))))
    a = _quiet_rmqm(x, convention=convention)
    b = _quiet_rmqm(x[list(permutation)], convention=convention)
    assert_matches(b, a, KEYS[convention], rel=1e-12, abs_tol=1e-15)


@HYPOTHESIS
@given(
    n=st.integers(1, 10),
    levels=st.integers(3, 8),
    d=st.integers(2, 8),
    seed=st.integers(0, 2**31 - 1),
    convention=st.sampled_from(["paper", "reference"]),
)
def test_positive_scaling_of_each_embedding_does_not_matter_when_normalized(n, levels, d, seed, convention):
    # every (probe, level) vector gets its own factor in [e^-5, e^5]; well-conditioned trajectories
    # (no zero steps: a copied level scaled by another factor is only equal up to rounding)
    x = trajectories(n, levels, d, seed)
    g = torch.Generator().manual_seed(seed + 1)
    factors = torch.exp(torch.empty(n, levels, 1, dtype=torch.float64).uniform_(-5, 5, generator=g))
    a = rmqm(x, convention=convention)
    b = rmqm(x * factors, convention=convention)
    assert_matches(b, a, KEYS[convention], rel=1e-9)
    unnormalized = rmqm(x * factors, convention=convention, normalize=False)
    assert not math.isclose(float(unnormalized["D"]), float(a["D"]), rel_tol=1e-3)


@HYPOTHESIS
@given(x=random_case(), convention=st.sampled_from(["paper", "reference"]), data=st.data())
def test_power_of_two_scaling_is_exact_with_repeated_levels(x, convention, data):
    # scaling by 2^k is exact in floating point, so even zero steps and collapsed probes survive it
    exponents = data.draw(
        st.lists(st.integers(-20, 20), min_size=x.numel() // x.shape[2], max_size=x.numel() // x.shape[2])
    )
    factors = torch.tensor(exponents, dtype=torch.float64).exp2().reshape(x.shape[0], x.shape[1], 1)
    a = _quiet_rmqm(x, convention=convention)
    b = _quiet_rmqm(x * factors, convention=convention)
    assert_matches(b, a, KEYS[convention], rel=1e-12, abs_tol=1e-15)


@HYPOTHESIS
@given(
    n=st.integers(1, 10),
    levels=st.integers(3, 8),
    d=st.integers(8, 16),
    seed=st.integers(0, 2**31 - 1),
    convention=st.sampled_from(["paper", "reference"]),
    normalize=st.booleans(),
)
def test_float32_matches_float64(n, levels, d, seed, convention, normalize):
    x = trajectories(n, levels, d, seed, step=0.5)
    # well-conditioned: no step, and no distance to the original, is tiny next to the others
    do, dp = (torch.tensor(s) for s in distance_series(x.numpy(), normalize))
    assume(float(dp.min()) > 0.1 * float(dp.mean()) and float(do.min()) > 0.1 * float(do.mean()))
    a = rmqm(x, convention=convention, normalize=normalize)
    # and spikes that are not almost 0 (|s_j - s_{j-1}| would then be a difference of near-equal numbers)
    assume(float(a["D_RC"]) > 0.05 and float(a["P_RC"]) > 0.05)
    b = rmqm(x.float(), convention=convention, normalize=normalize)
    keys = ("RMQM", "D", "D_RC", "P_RC") + (("D_prev",) if convention == "reference" else ())
    assert_matches(b, a, keys, rel=1e-5)


@pytest.mark.parametrize("convention", ["paper", "reference"])
@pytest.mark.parametrize("normalize", [True, False])
def test_float32_embeddings_with_tiny_steps_are_measured_exactly(convention, normalize):
    # steps of 3e-5 of the norm: normalising or subtracting in float32 would move P_RC by ~4e-5
    x32 = trajectories(64, 100, 32, seed=0, step=3e-5).float()
    result = rmqm(x32, convention=convention, normalize=normalize)
    keys = ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se")
    assert_matches(result, rmqm(x32.double(), convention=convention, normalize=normalize), keys, rel=1e-12)
    assert_matches(result, reference_rmqm(x32.double().numpy(), convention, normalize), keys[:4], rel=1e-9)


@pytest.mark.parametrize(("scale", "dtype"), [(1e-30, torch.float32), (1e-160, torch.float64), (1e160, torch.float64)])
def test_representations_of_extreme_magnitude_are_normalised_exactly(scale, dtype):
    # the squares of these norms underflow or overflow: normalising must not take them directly
    x = trajectories(6, 5, 4, seed=3)
    expected = rmqm(x)
    scaled = rmqm((x * scale).to(dtype))
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    assert_matches(scaled, expected, ("RMQM", "D", "D_RC", "P_RC"), rel=tolerance)






@pytest.mark.parametrize("convention", ["paper", "reference"])
@pytest.mark.parametrize(("spread", "scale", "normalize"), [(1e-9, 1.0, True), (1e-9, 1e4, False), (0.0, 1.0, True)])
def test_standard_errors_of_probes_that_agree_to_many_digits(convention, spread, scale, normalize):
    # sums of squares minus squared sums lose every digit here (SE of identical probes came out ~1e-8)
    x = nearly_identical(50, spread, scale=scale)
    result = rmqm(x, convention=convention, normalize=normalize)
    expected = reference_rmqm(x.numpy(), convention, normalize)
    if spread == 0:
        for key in SE_KEYS:
            assert float(result[key]) <= 1e-15 * abs(float(result[key[:-3]])), key
    else:
        assert all(float(result[key]) > 0 for key in SE_KEYS)
        assert_matches(result, expected, SE_KEYS, rel=1e-6)


def test_a_representation_that_moves_by_rounding_alone_is_not_left_out():
    # as the README says: only its norm changes, so normalised it stays put up to rounding
    direction = trajectories(1, 1, 4, seed=5)
    growing = torch.cat([direction * scale for scale in (1.0, 1.3, 1.7, 2.9, 3.1)], dim=1)
    do, dp = _trajectory_distances(growing, normalize=True)
    assert 0 < float(do.max()) < 1e-15 and 0 < float(dp.max()) < 1e-15
    others = trajectories(3, 5, 4, seed=6)
    result = rmqm(torch.cat([growing, others]))
    assert int(result["D_RC_left_out"]) == int(result["P_RC_left_out"]) == 0
    exactly_still = rmqm(torch.cat([direction.repeat(1, 5, 1), others]))
    assert int(exactly_still["D_RC_left_out"]) == int(exactly_still["P_RC_left_out"]) == 1


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("embeddings", "error", "match"),
    [
        (torch.zeros(4, 5), ValueError, r"shape \(N, L, d\).*got shape \(4, 5\)"),
        (torch.zeros(2, 3, 4, 5), ValueError, r"got shape \(2, 3, 4, 5\)"),
        (torch.zeros(4, 2, 3), ValueError, r"at least L=3 levels.*\(4, 2, 3\)"),
        (torch.zeros(4, 3, 0), ValueError, r"no features"),
        (torch.zeros(4, 3, 2, dtype=torch.int64), TypeError, r"floating-point.*torch.int64"),
        ([[[0.0]]], TypeError, r"must be a torch.Tensor, got list"),
    ],
)
def test_bad_embeddings_raise(embeddings, error, match):
    with pytest.raises(error, match=match):
        rmqm(embeddings)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_embeddings_raise(bad):
    x = trajectories(3, 4, 2, seed=0)
    x[1, 2, 0] = bad
    with pytest.raises(ValueError, match=r"non-finite.*probe 1, level 2"):
        rmqm(x)


def test_no_probes_raise():
    with pytest.raises(ValueError, match="at least one probe"):
        rmqm(torch.zeros(0, 4, 3))


def test_bad_convention_and_normalize_raise():
    x = trajectories(3, 4, 2, seed=0)
    with pytest.raises(ValueError, match=r"`convention` must be one of.*'pandas'"):
        rmqm(x, convention="pandas")
    with pytest.raises(TypeError, match=r"`normalize` must be a bool, got 1"):
        rmqm(x, normalize=1)


def test_tiny_representations_are_normalised_like_any_other():
    trajectories = torch.randn(6, 5, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = rmqm(trajectories)
    tiny = rmqm(trajectories * 1e-13)
    for key in ("RMQM", "D", "D_RC", "P_RC"):
        assert float(tiny[key]) == pytest.approx(float(expected[key]), rel=1e-9)
