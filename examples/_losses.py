"""The losses of the paper's five methods: NT-Xent (SimCLR) and triplet losses (label-mined or on views).

Triplet losses work on L2-normalised embeddings; cross-entropy is torch's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's NT-Xent: each of the 2B views must pick its partner among the other 2B - 1 (cosine / T)."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"`z1`, `z2` must be (B, d) of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}.")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    b = len(z1)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, partner)


def _pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances between L2-normalised rows; safe gradient at distance 0."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    return (2 - 2 * a @ b.T).clamp_min(1e-12).sqrt()


def _mean_of_active(losses: Tensor, z: Tensor) -> Tensor:
    """Mean of the positive triplet losses; a zero still attached to ``z``'s graph if there is none."""
    active = losses[losses > 0]
    return active.mean() if active.numel() else z.sum() * 0.0


def triplet_loss_batch_hard(z: Tensor, labels: Tensor, margin: float = 0.2, mining: str = "hard") -> Tensor:
    """Triplet loss with label-mined triplets on L2-normalised embeddings (Hermans et al., 2017).

    ``mining="hard"``: per anchor, farthest positive against nearest negative, averaged over anchors.
    ``mining="all"``: every valid triplet, averaged over those with a positive loss. Zero if none exists.
    """
    if mining not in ("hard", "all"):
        raise ValueError(f"`mining` must be one of ('hard', 'all'), got {mining!r}.")
    if z.ndim != 2 or labels.shape != (len(z),):
        raise ValueError(f"`z` must be (B, d), `labels` (B,), got {tuple(z.shape)}, {tuple(labels.shape)}.")
    dist = _pairwise_distances(z, z)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    negative = ~same
    if mining == "hard":
        valid = positive.any(1) & negative.any(1)
        if not valid.any():
            return z.sum() * 0.0
        hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(1)
        hardest_neg = dist.masked_fill(~negative, float("inf")).amin(1)
        return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()
    losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)  # (anchor, positive, negative)
    return _mean_of_active(losses[positive[:, :, None] & negative[:, None, :]], z)


def triplet_loss_views(z_anchor: Tensor, z_positive: Tensor, margin: float = 0.2, mining: str = "all") -> Tensor:
    """Triplet-SS: the positive is the anchor's other view, negatives are the views of the other images.

    ``mining="all"`` (default) averages every triplet with a positive loss; ``mining="hard"`` keeps only
    the nearest negative per anchor, which tends to collapse self-supervised training.
    """
    if mining not in ("hard", "all"):
        raise ValueError(f"`mining` must be one of ('hard', 'all'), got {mining!r}.")
    if z_anchor.ndim != 2 or z_anchor.shape != z_positive.shape or len(z_anchor) < 2:
        raise ValueError(
            "`z_anchor` and `z_positive` must be (B, d) of one shape with B >= 2, "
            f"got {tuple(z_anchor.shape)}, {tuple(z_positive.shape)}."
        )
    b = len(z_anchor)
    dist = _pairwise_distances(z_anchor, torch.cat([z_anchor, z_positive]))  # (B, 2B)
    rows = torch.arange(b, device=dist.device)
    d_pos = dist[rows, b + rows]
    same_image = torch.eye(b, dtype=torch.bool, device=z_anchor.device).repeat(1, 2)
    if mining == "hard":
        return F.relu(d_pos - dist.masked_fill(same_image, float("inf")).amin(1) + margin).mean()
    return _mean_of_active(F.relu(d_pos[:, None] - dist + margin)[~same_image], z_anchor)
