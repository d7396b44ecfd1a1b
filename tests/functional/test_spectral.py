import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rmqm_callback.functional.spectral import alpha_req, rankme


def _random_orthogonal(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _power_law_embeddings(n: int, d: int, alpha: float, seed: int = 0, offset: float = 3.0) -> torch.Tensor:
    """(n, d) matrix whose sample covariance has eigenvalues exactly k^-alpha, k = 1..d (needs n - 1 >= d)."""
    g = torch.Generator().manual_seed(seed)
    # orthonormal columns orthogonal to the all-ones vector, so the rows are already centred
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    basis = torch.cat([torch.ones(n, 1, dtype=torch.float64), noise], dim=1)
    q, _ = torch.linalg.qr(basis)
    scores = q[:, 1:]
    eigenvalues = torch.arange(1, d + 1, dtype=torch.float64) ** -alpha
    rotation = _random_orthogonal(d, seed + 1)
    x = math.sqrt(n - 1) * scores * eigenvalues.sqrt() @ rotation.T
    return x + offset * torch.randn(1, d, generator=g, dtype=torch.float64)  # a mean that must be removed


# ---------------------------------------------------------------- RankMe


@pytest.mark.parametrize(("n", "d"), [(10, 4), (4, 10), (6, 6), (50, 1)])
def test_rankme_equal_singular_values_is_rank(n, d):
    x = 2.5 * torch.eye(n, d)
    assert rankme(x).item() == pytest.approx(min(n, d), rel=1e-4)


def test_rankme_orthonormal_columns_is_rank():
    q, _ = torch.linalg.qr(torch.randn(40, 7, generator=torch.Generator().manual_seed(0)))
    assert rankme(q).item() == pytest.approx(7, rel=1e-4)


def test_rankme_rank_one_is_one():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 1, generator=g) @ torch.randn(1, 12, generator=g)
    assert rankme(x).item() == pytest.approx(1.0, abs=1e-3)


def test_rankme_known_value_two_singular_values():
    # singular values (3, 1): p = (3/4, 1/4); RankMe = exp(H(p))
    x = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert rankme(x, eps=0.0).item() == pytest.approx(expected, rel=1e-12)


def test_rankme_returns_float64_scalar_for_float32_input():
    out = rankme(torch.randn(20, 5))
    assert out.dtype == torch.float64
    assert out.ndim == 0


def test_rankme_is_not_centred():
    # a constant matrix has rank 1 without centring (and would be all zeros after centring)
    assert rankme(torch.full((10, 5), 3.0)).item() == pytest.approx(1.0, abs=1e-3)


def test_rankme_within_bounds():
    x = torch.randn(25, 8, generator=torch.Generator().manual_seed(2))
    value = rankme(x).item()
    assert 1.0 <= value <= 8.0 + 1e-4


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_rankme_invariant_to_scale_and_rotation(scale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 6, generator=g, dtype=torch.float64)
    reference = rankme(x)
    torch.testing.assert_close(rankme(scale * x), reference, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(rankme(x @ _random_orthogonal(6, seed)), reference, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- alpha-ReQ


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.7, 3.0])
def test_alpha_req_recovers_exact_power_law(alpha):
    x = _power_law_embeddings(n=200, d=32, alpha=alpha)
    assert alpha_req(x).item() == pytest.approx(alpha, abs=1e-8)


def test_alpha_req_recovers_power_law_from_gaussian_samples():
    g = torch.Generator().manual_seed(3)
    d, alpha = 16, 1.2
    eigenvalues = torch.arange(1, d + 1, dtype=torch.float64) ** -alpha
    samples = torch.randn(100_000, d, generator=g, dtype=torch.float64)
    x = samples * eigenvalues.sqrt() @ _random_orthogonal(d, 4).T
    assert alpha_req(x).item() == pytest.approx(alpha, abs=0.05)


def test_alpha_req_fit_range_on_broken_power_law():
    # slope 1 on ranks 1..10 and slope 3 on ranks 11..20; the fit ranges pick each half
    k = torch.arange(1, 21, dtype=torch.float64)
    eigenvalues = torch.where(k <= 10, k**-1.0, 10.0**2 * k**-3.0)
    x = torch.cat([torch.diag(eigenvalues.sqrt()), -torch.diag(eigenvalues.sqrt())])
    assert alpha_req(x, fit_range=(0.0, 0.5)).item() == pytest.approx(1.0, abs=1e-9)
    assert alpha_req(x, fit_range=(0.5, 1.0)).item() == pytest.approx(3.0, abs=1e-9)


def test_alpha_req_ignores_zero_eigenvalues():
    # 8 features but rank 5 (three zero columns): the zero eigenvalues are not part of the fit
    x = _power_law_embeddings(n=60, d=5, alpha=2.0)
    x = torch.cat([x, torch.zeros(60, 3, dtype=torch.float64)], dim=1)
    assert alpha_req(x).item() == pytest.approx(2.0, abs=1e-8)


def test_alpha_req_few_samples_uses_n_minus_one_ranks():
    # N = 6 samples in d = 20: at most 5 nonzero eigenvalues; must not fail or fit zeros
    g = torch.Generator().manual_seed(5)
    embed, _ = torch.linalg.qr(torch.randn(20, 5, generator=g, dtype=torch.float64))
    x = _power_law_embeddings(n=6, d=5, alpha=1.0) @ embed.T
    assert x.shape == (6, 20)
    assert alpha_req(x).item() == pytest.approx(1.0, abs=1e-8)


def test_alpha_req_returns_float64_scalar():
    out = alpha_req(torch.randn(30, 6))
    assert out.dtype == torch.float64
    assert out.ndim == 0


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_alpha_req_invariant_to_scale_shift_and_rotation(scale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 8, generator=g, dtype=torch.float64) * torch.linspace(1, 0.1, 8, dtype=torch.float64)
    reference = alpha_req(x)
    torch.testing.assert_close(alpha_req(scale * x + 5.0), reference, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(alpha_req(x @ _random_orthogonal(8, seed)), reference, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("fn", [rankme, alpha_req])
@pytest.mark.parametrize(
    ("embeddings", "error", "match"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], TypeError, "must be a torch.Tensor, got list"),
        (torch.ones(4, 3, dtype=torch.int64), TypeError, r"floating-point tensor, got dtype torch.int64"),
        (torch.ones(5), ValueError, r"must be 2-D with shape \(N, d\), got shape \(5,\)"),
        (torch.ones(2, 3, 4), ValueError, r"got shape \(2, 3, 4\)"),
        (torch.ones(1, 4), ValueError, r"at least 2 rows \(N >= 2\), got shape \(1, 4\)"),
        (torch.ones(3, 0), ValueError, r"at least 1 column \(d >= 1\), got shape \(3, 0\)"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), ValueError, r"must be finite, got 1 NaN/inf"),
        (torch.tensor([[1.0, float("inf")], [0.0, -float("inf")]]), ValueError, r"got 2 NaN/inf"),
    ],
)
def test_bad_embeddings_raise(fn, embeddings, error, match):
    with pytest.raises(error, match=match):
        fn(embeddings)


def test_rankme_zero_matrix_raises():
    with pytest.raises(ValueError, match="`rankme`: `embeddings` is the zero matrix"):
        rankme(torch.zeros(4, 3))


@pytest.mark.parametrize(
    ("eps", "error", "match"),
    [("0.1", TypeError, "`eps` must be a float, got str"), (True, TypeError, "got bool"),
     (-1e-3, ValueError, r"`eps` must be a finite number >= 0, got -0.001"),
     (float("nan"), ValueError, "got nan")],
)
def test_rankme_bad_eps_raises(eps, error, match):
    with pytest.raises(error, match=match):
        rankme(torch.randn(4, 3), eps=eps)


@pytest.mark.parametrize(
    ("fit_range", "error", "match"),
    [
        (0.5, TypeError, r"`fit_range` must be a pair \(lo, hi\) or None, got 0.5"),
        ((0.1, 0.5, 0.9), TypeError, "must be a pair"),
        (("a", 1.0), TypeError, "must hold two numbers"),
        ((0.6, 0.4), ValueError, r"must satisfy 0 <= lo < hi <= 1, got \(0.6, 0.4\)"),
        ((-0.1, 0.5), ValueError, "must satisfy 0 <= lo < hi <= 1"),
        ((0.0, 1.5), ValueError, "must satisfy 0 <= lo < hi <= 1"),
    ],
)
def test_alpha_req_bad_fit_range_raises(fit_range, error, match):
    with pytest.raises(error, match=match):
        alpha_req(torch.randn(10, 4), fit_range=fit_range)


def test_alpha_req_too_few_eigenvalues_raises():
    with pytest.raises(ValueError, match=r"at least 2 nonzero eigenvalues, got 1 in ranks 1..1 of 1 nonzero"):
        alpha_req(torch.randn(2, 5))  # two samples: one nonzero eigenvalue
    rank_one = torch.randn(20, 1) @ torch.randn(1, 6)
    with pytest.raises(ValueError, match="at least 2 nonzero eigenvalues"):
        alpha_req(rank_one)
    with pytest.raises(ValueError, match=r"fit_range=\(0.0, 0.1\)"):
        alpha_req(torch.randn(50, 8), fit_range=(0.0, 0.1))
    with pytest.raises(ValueError, match="got 0 in ranks"):
        alpha_req(torch.full((5, 3), 2.0))  # constant: centred matrix is all zeros
