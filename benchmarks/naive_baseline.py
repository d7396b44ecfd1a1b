"""The naive pipeline RMQM is compared with: keep every representation, compute the metric afterwards.

This is how the authors' research pipeline works: one pass over the whole probe per noise level
(fresh noise), representations concatenated into ``(N, L, d)``, a full ``L x L`` pairwise distance
matrix per probe (``torch.cdist``), ``do`` / ``dp`` read from it, then the metric. Noise comes
from the package's ``GaussianNoise.alter`` so that it is the very noise ``score()`` uses, and the
metric is recomputed here from the distances (paper convention, eqs. 1-4) without the package.

Run it to check it agrees with ``score()`` on a small probe:
``python benchmarks/naive_baseline.py``.
"""

from __future__ import annotations

import math

import _harness  # noqa: F401  (import path for rmqm_callback)
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rmqm_callback import GaussianNoise


def naive_embeddings(
    model: nn.Module, get_inputs, num_probes: int, noise: GaussianNoise, batch_size: int, device: torch.device
) -> Tensor:
    """``(N, L, d)``: for every level, one pass over the whole probe with that level's noise.

    ``get_inputs(start, stop)`` returns probes ``start..stop-1`` (CPU); they are altered on ``device``.
    """
    levels = []
    with torch.no_grad():
        for level in range(noise.levels):
            parts = []
            for start in range(0, num_probes, batch_size):
                stop = min(start + batch_size, num_probes)
                inputs = get_inputs(start, stop).to(device)
                altered = noise.alter(inputs, torch.arange(start, stop), level)
                parts.append(model(altered).float())
            levels.append(torch.cat(parts))
    return torch.stack(levels, dim=1)


def naive_distances(embeddings: Tensor, normalize: bool = True) -> tuple[Tensor, Tensor]:
    """``do``, ``dp`` ``(N, J)`` read from the full pairwise distance matrix ``(N, L, L)`` of every probe.

    ``cdist`` is asked for exact differences (its matrix-product shortcut loses ~1% on small steps
    in float32, which the relative-change terms divide by).
    """
    phi = F.normalize(embeddings, dim=-1) if normalize else embeddings
    matrix = torch.cdist(phi, phi, compute_mode="donot_use_mm_for_euclid_dist")
    do = matrix[:, 0, 1:]
    dp = torch.diagonal(matrix, offset=1, dim1=1, dim2=2)
    return do, dp


def naive_rmqm(do: Tensor, dp: Tensor) -> dict[str, float]:
    """Paper convention (eqs. 1-4) from the distances, in float64; a term with denominator 0 does not exist."""
    do, dp = do.double().cpu(), dp.double().cpu()
    d = do.mean()

    def spikes(series: Tensor, first: int) -> Tensor:
        previous = torch.cat([torch.zeros_like(series[:, :1]), series[:, :-1]], dim=1)
        terms = ((series - previous).abs() / series)[:, first:]
        exists = (series != 0)[:, first:]
        counts = exists.sum(dim=1)
        per_probe = torch.where(exists, terms, torch.zeros_like(terms)).sum(dim=1) / counts.clamp(min=1)
        return per_probe[counts > 0].mean()

    d_rc, p_rc = spikes(do, 0), spikes(dp, 1)
    rmqm = math.log(1 + d + 1 / d_rc + 1 / p_rc)
    return {"RMQM": rmqm, "D": float(d), "D_RC": float(d_rc), "P_RC": float(p_rc)}


def naive_score(
    model: nn.Module, get_inputs, num_probes: int, noise: GaussianNoise, batch_size: int, device: torch.device
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        embeddings = naive_embeddings(model, get_inputs, num_probes, noise, batch_size, device)
    finally:
        model.train(was_training)
    return naive_rmqm(*naive_distances(embeddings))


def main() -> None:
    from _models import make_model, make_probe

    from rmqm_callback import score

    device = torch.device("cpu")
    model, probe = make_model("lenet"), make_probe("lenet", 300)
    noise = GaussianNoise(levels=20)
    ours = score(model, probe, noise, batch_size=64)
    naive = naive_score(model, lambda a, b: probe[a:b], len(probe), noise, 64, device)
    for key in ("RMQM", "D", "D_RC", "P_RC"):
        print(f"{key:5s} score() {float(ours[key]):.10f}  naive {naive[key]:.10f}")


if __name__ == "__main__":
    main()
