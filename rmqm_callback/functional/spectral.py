"""Label-free spectral scores of an embedding matrix: RankMe and alpha-ReQ.

Both read only the singular values of an ``(N, d)`` matrix of representations, so they are the natural
baselines to set beside RMQM: no labels, no alterations, one forward pass over a probe set.
"""

import math

import torch
from torch import Tensor

__all__ = ["alpha_req", "rankme"]


def _check_embeddings(embeddings: Tensor, fn_name: str) -> Tensor:
    """Check that ``embeddings`` is a finite 2-D floating tensor with at least two rows.

    Args:
        embeddings: the representations to check, shape ``(N, d)``.
        fn_name: name of the calling function, used in the error messages.

    Returns:
        ``embeddings`` cast to ``torch.float64`` (still attached to the autograd graph).

    Raises:
        TypeError: If ``embeddings`` is not a floating-point tensor.
        ValueError: If ``embeddings`` is not 2-D, has fewer than 2 rows or no column, or holds a NaN/inf.
    """
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"`{fn_name}`: `embeddings` must be a torch.Tensor, got {type(embeddings).__name__}.")
    if not embeddings.is_floating_point():
        raise TypeError(f"`{fn_name}`: `embeddings` must be a floating-point tensor, got dtype {embeddings.dtype}.")
    if embeddings.ndim != 2:
        raise ValueError(
            f"`{fn_name}`: `embeddings` must be 2-D with shape (N, d), got shape {tuple(embeddings.shape)}."
        )
    n, d = embeddings.shape
    if n < 2:
        raise ValueError(f"`{fn_name}`: `embeddings` needs at least 2 rows (N >= 2), got shape ({n}, {d}).")
    if d < 1:
        raise ValueError(f"`{fn_name}`: `embeddings` needs at least 1 column (d >= 1), got shape ({n}, {d}).")
    if not torch.isfinite(embeddings).all():
        n_bad = int((~torch.isfinite(embeddings)).sum())
        raise ValueError(f"`{fn_name}`: `embeddings` must be finite, got {n_bad} NaN/inf value(s) in shape ({n}, {d}).")
    return embeddings.to(torch.float64)


def _rankme_compute(singular_values: Tensor, eps: float) -> Tensor:
    """Exponential of the entropy of the L1-normalised singular values (plus ``eps``)."""
    total = singular_values.sum()
    if total <= 0:
        raise ValueError("`rankme`: `embeddings` is the zero matrix (all singular values are 0).")
    p = singular_values / total + eps
    return torch.exp(-torch.special.xlogy(p, p).sum())


def rankme(embeddings: Tensor, eps: float = 1e-7) -> Tensor:
    r"""RankMe: the effective rank of an embedding matrix (Garrido et al., 2023).

    With :math:`\sigma_1, \dots, \sigma_m` the singular values of the ``(N, d)`` embedding matrix
    (not centred, as in the paper), :math:`m = \min(N, d)`:

    .. math::
        p_k = \frac{\sigma_k}{\lVert \sigma \rVert_1} + \epsilon, \qquad
        \operatorname{RankMe} = \exp\Big(-\sum_{k=1}^{m} p_k \log p_k\Big)

    The score lies in :math:`[1, \min(N, d)]` (up to :math:`\epsilon`): 1 for a collapsed (rank-1)
    representation, :math:`\min(N, d)` when all singular values are equal. It is invariant to scaling
    and to orthogonal rotations of the feature space.

    Reference:
        Q. Garrido, R. Balestriero, L. Najman, Y. LeCun. "RankMe: Assessing the downstream performance of
        pretrained self-supervised representations by their rank." ICML 2023. arXiv:2210.02885.

    Args:
        embeddings: representations, floating tensor of shape ``(N, d)``, ``N >= 2``, all finite.
        eps: small non-negative constant added to each :math:`p_k` (the paper's :math:`\epsilon`).

    Returns:
        0-dim ``torch.float64`` tensor with the RankMe score.

    Raises:
        TypeError: If ``embeddings`` is not a floating-point tensor, or ``eps`` is not a real number.
        ValueError: If ``embeddings`` is not 2-D, has fewer than 2 rows, holds a NaN/inf, or is all zeros;
            or if ``eps`` is negative or not finite.

    Examples:
        >>> import torch
        >>> from rmqm_callback.functional.spectral import rankme
        >>> round(rankme(torch.eye(8, 4)).item(), 4)
        4.0
        >>> round(rankme(torch.ones(8, 4)).item(), 4)
        1.0
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"`rankme`: `eps` must be a float, got {type(eps).__name__}.")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"`rankme`: `eps` must be a finite number >= 0, got {eps}.")
    x = _check_embeddings(embeddings, "rankme")
    return _rankme_compute(torch.linalg.svdvals(x), float(eps))


def _covariance_eigenvalues(x: Tensor) -> Tensor:
    """Eigenvalues of the sample covariance of the rows of ``x``, descending, first ``min(N - 1, d)``."""
    n, d = x.shape
    centred = x - x.mean(dim=0, keepdim=True)
    # squared singular values of the centred matrix: more accurate than eigvalsh of X^T X
    eigenvalues = torch.linalg.svdvals(centred) ** 2 / (n - 1)
    return eigenvalues[: min(n - 1, d)]


def _alpha_req_compute(eigenvalues: Tensor, fit_range: tuple[float, float] | None) -> Tensor:
    """Least-squares slope of ``log(lambda_k)`` against ``log(k)`` over the nonzero eigenvalues, negated."""
    largest = eigenvalues.max() if eigenvalues.numel() else eigenvalues.new_zeros(())
    # numerically zero eigenvalues (rank deficiency) are left out, with the tolerance of matrix_rank
    tol = largest * eigenvalues.numel() * torch.finfo(eigenvalues.dtype).eps
    n_nonzero = int((eigenvalues > tol).sum()) if largest > 0 else 0
    start, stop = 0, n_nonzero
    if fit_range is not None:
        start, stop = math.floor(fit_range[0] * n_nonzero), math.ceil(fit_range[1] * n_nonzero)
    if stop - start < 2:
        raise ValueError(
            f"`alpha_req`: the fit needs at least 2 nonzero eigenvalues, got {stop - start} in ranks "
            f"{start + 1}..{stop} of {n_nonzero} nonzero (fit_range={fit_range})."
        )
    ranks = torch.arange(start + 1, stop + 1, dtype=eigenvalues.dtype, device=eigenvalues.device)
    log_k = torch.log(ranks)
    log_lambda = torch.log(eigenvalues[start:stop])
    log_k_centred = log_k - log_k.mean()
    slope = (log_k_centred * (log_lambda - log_lambda.mean())).sum() / (log_k_centred**2).sum()
    return -slope


def _check_fit_range(fit_range: tuple[float, float] | None) -> None:
    """Check that ``fit_range`` is ``None`` or a pair ``(lo, hi)`` with ``0 <= lo < hi <= 1``."""
    if fit_range is None:
        return
    if not isinstance(fit_range, (tuple, list)) or len(fit_range) != 2:
        raise TypeError(f"`alpha_req`: `fit_range` must be a pair (lo, hi) or None, got {fit_range!r}.")
    lo, hi = fit_range
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        raise TypeError(f"`alpha_req`: `fit_range` must hold two numbers, got {fit_range!r}.")
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"`alpha_req`: `fit_range` must satisfy 0 <= lo < hi <= 1, got {fit_range!r}.")


def alpha_req(embeddings: Tensor, *, fit_range: tuple[float, float] | None = None) -> Tensor:
    r"""Alpha-ReQ: the power-law decay rate of the representations' eigenspectrum (Agrawal et al., 2022).

    With :math:`\lambda_1 \geq \lambda_2 \geq \dots` the eigenvalues of the sample covariance of the
    centred ``(N, d)`` embeddings, :math:`\alpha` is the least-squares fit of

    .. math::
        \log \lambda_k = c - \alpha \log k, \qquad k = k_0, \dots, K

    where :math:`K \leq \min(N - 1, d)` is the number of nonzero eigenvalues. Small :math:`\alpha`
    means a flat spectrum (many used directions, towards white noise); large :math:`\alpha` means a fast
    decay (towards collapse); the paper finds downstream accuracy is best near :math:`\alpha \approx 1`.
    The score is invariant to scaling and to orthogonal rotations of the feature space.

    Reference:
        K. K. Agrawal, A. K. Mondal, A. Ghosh, B. A. Richards. "alpha-ReQ: Assessing Representation Quality
        in Self-Supervised Learning by measuring eigenspectrum decay." NeurIPS 2022.

    Args:
        embeddings: representations, floating tensor of shape ``(N, d)``, ``N >= 2``, all finite.
        fit_range: optional fractions ``(lo, hi)``, ``0 <= lo < hi <= 1``, of the ``K`` nonzero ranks to fit
            over: ranks ``floor(lo * K) + 1`` to ``ceil(hi * K)``. ``None`` fits all ``K`` ranks.

    Returns:
        0-dim ``torch.float64`` tensor with :math:`\alpha`.

    Raises:
        TypeError: If ``embeddings`` is not a floating-point tensor, or ``fit_range`` not a pair of numbers.
        ValueError: If ``embeddings`` is not 2-D, has fewer than 2 rows or holds a NaN/inf; if ``fit_range``
            is out of order or outside ``[0, 1]``; or if fewer than 2 nonzero eigenvalues fall in the fit.

    Examples:
        >>> import torch
        >>> from rmqm_callback.functional.spectral import alpha_req
        >>> eigenvalues = torch.arange(1, 6, dtype=torch.float64) ** -1.5  # lambda_k = k^-1.5
        >>> x = torch.cat([torch.diag(eigenvalues.sqrt()), -torch.diag(eigenvalues.sqrt())])
        >>> round(alpha_req(x).item(), 6)
        1.5
    """
    _check_fit_range(fit_range)
    x = _check_embeddings(embeddings, "alpha_req")
    return _alpha_req_compute(_covariance_eigenvalues(x), fit_range)
