"""Support code for the examples: scikit-learn's 8x8 digits, torch-only augmentations, a tiny encoder.

The five training methods of the RMQM paper (cross-entropy, NT-Xent, triplet-supervised, triplet-SS,
triplet-entropy) are available through :class:`EncoderModule`; :func:`knn_accuracy` is the paper's
downstream score (1-nearest-neighbour accuracy). Nothing here downloads data: ``load_digits`` ships
with scikit-learn.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

METHODS = ("cross-entropy", "nt-xent", "triplet-supervised", "triplet-ss", "triplet-entropy")
SELF_SUPERVISED = ("nt-xent", "triplet-ss")
WITH_CLASSIFIER = ("cross-entropy", "triplet-entropy")
OPTIMIZERS = ("adam", "sgd")


# ---------------------------------------------------------------- data


def load_digits_tensors(classes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """Return scikit-learn's 1,797 digits as float32 images ``(N, 1, 8, 8)`` in [0, 1] and int64 labels.

    Args:
        classes: optional digits (0..9) to keep; ``None`` keeps all ten.

    Raises:
        ValueError: If ``classes`` is empty or holds a value outside 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if classes is None:
        return images, labels
    wanted = [int(c) for c in classes]
    if not wanted or any(c not in range(10) for c in wanted):
        raise ValueError(f"`classes` must be a non-empty sequence of digits 0..9, got {list(classes)!r}.")
    keep = torch.isin(labels, torch.tensor(wanted))
    return images[keep], labels[keep]


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[Tensor, ...]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into disjoint parts of the given ``fractions``.

    Part boundaries are ``round(n * cumsum(fractions))``; with fractions summing to 1 every index is used.

    Raises:
        ValueError: If ``n < 1``, a fraction is not positive, or the fractions sum to more than 1.
    """
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"`fractions` must be positive and sum to at most 1, got {tuple(fractions)}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cumulative = torch.tensor(fractions, dtype=torch.float64).cumsum(0).tolist()
    bounds = [0] + [min(n, round(n * c)) for c in cumulative]
    return tuple(order[lo:hi] for lo, hi in itertools.pairwise(bounds))


# ---------------------------------------------------------------- augmentations (batches in [0, 1])


def _uniform(x: Tensor, low: float, high: float, generator: torch.Generator | None, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(x.shape[0], *shape, generator=generator, device=x.device)


def random_affine(
    x: Tensor,
    generator: torch.Generator | None = None,
    degrees: float = 15.0,
    translate: float = 0.125,
    scale: tuple[float, float] = (0.9, 1.1),
) -> Tensor:
    """Rotate by up to ``degrees``, shift by up to ``translate`` of the side, and rescale each image."""
    angle = _uniform(x, -math.radians(degrees), math.radians(degrees), generator)
    factor = _uniform(x, scale[0], scale[1], generator)
    shift = _uniform(x, -2 * translate, 2 * translate, generator, 2)  # grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    rows = [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)]
    theta = torch.stack(rows, 1)  # (B, 2, 3): output grid -> input sampling coordinates
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)


def random_erasing(
    x: Tensor, generator: torch.Generator | None = None, p: float = 0.5, max_size: int = 3
) -> Tensor:
    """With probability ``p`` per image, set a random rectangle of side 1..``max_size`` pixels to 0."""
    height, width = x.shape[-2:]
    size = torch.randint(1, max_size + 1, (x.shape[0], 2), generator=generator, device=x.device)
    top = (_uniform(x, 0, 1, generator) * (height - size[:, 0] + 1)).long()
    left = (_uniform(x, 0, 1, generator) * (width - size[:, 1] + 1)).long()
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + size[:, 0])[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + size[:, 1])[:, None])
    erase = in_rows[:, :, None] & in_cols[:, None, :] & (_uniform(x, 0, 1, generator) < p)[:, None, None]
    return x.masked_fill(erase[:, None], 0.0)


def pixel_noise(x: Tensor, generator: torch.Generator | None = None, std: float = 0.05) -> Tensor:
    """Add Gaussian pixel noise of standard deviation ``std`` and clip to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def brightness_contrast(
    x: Tensor, generator: torch.Generator | None = None, brightness: float = 0.2, contrast: float = 0.2
) -> Tensor:
    """Scale each image's contrast about its mean by ``1 +- contrast``, shift by ``+- brightness``, clip."""
    c = _uniform(x, 1 - contrast, 1 + contrast, generator, 1, 1, 1).to(x.dtype)
    b = _uniform(x, -brightness, brightness, generator, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean + b).clamp(0.0, 1.0)


def augment(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random view of a batch ``(B, C, H, W)`` in [0, 1]: affine, jitter, erasing, noise; stays in [0, 1].

    Raises:
        ValueError: If ``x`` is not a 4-D floating tensor.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"`x` must be a float batch (B, C, H, W), got shape {tuple(x.shape)}, {x.dtype}.")
    x = brightness_contrast(random_affine(x, generator), generator)
    return pixel_noise(random_erasing(x, generator), generator)


def two_views(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independent augmented views of the batch ``x`` (SimCLR-style positives)."""
    return augment(x, generator), augment(x, generator)


# ---------------------------------------------------------------- encoder


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class DigitsEncoder(nn.Module):
    """LeNet-like encoder for 1x8x8 digits: ``backbone`` gives ``(B, embedding_dim)`` representations.

    ``classifier`` (a linear head on the representation) exists only when ``num_classes`` is given.
    """

    def __init__(self, embedding_dim: int = 64, num_classes: int | None = None) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be >= 1, got {embedding_dim}.")
        self.embedding_dim = embedding_dim
        self.backbone = nn.Sequential(
            _conv_block(1, 16),
            _conv_block(16, 32),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            _conv_block(32, 64),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, embedding_dim),
        )
        self.classifier = nn.Linear(embedding_dim, num_classes) if num_classes else None

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)


# ---------------------------------------------------------------- losses


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


def triplet_loss_views(
    z_anchor: Tensor, z_positive: Tensor, margin: float = 0.2, mining: str = "all"
) -> Tensor:
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


# ---------------------------------------------------------------- Lightning module


class EncoderModule(pl.LightningModule):
    """Train a :class:`DigitsEncoder` with one of the paper's five methods; ``forward`` is the representation.

    Raises:
        ValueError: If ``method`` or ``optimizer`` is not one of the allowed values.
    """

    def __init__(
        self,
        method: str = "cross-entropy",
        embedding_dim: int = 64,
        optimizer: str = "adam",
        lr: float = 1e-3,
        num_classes: int = 10,
        temperature: float = 0.5,
        margin: float = 0.2,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}.")
        self.save_hyperparameters()
        self.encoder = DigitsEncoder(embedding_dim, num_classes if method in WITH_CLASSIFIER else None)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _loss(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        method, margin = self.hparams.method, self.hparams.margin
        if method in SELF_SUPERVISED:
            v1, v2 = two_views(x, generator)
            z1, z2 = self(v1), self(v2)
            if method == "nt-xent":
                return nt_xent(z1, z2, self.hparams.temperature)
            return triplet_loss_views(z1, z2, margin)
        z = self(x)
        if method == "triplet-supervised":
            return triplet_loss_batch_hard(z, y, margin)
        cross_entropy = F.cross_entropy(self.encoder.classifier(z), y)
        if method == "cross-entropy":
            return cross_entropy
        return cross_entropy + triplet_loss_batch_hard(z, y, margin)  # triplet-entropy

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(*batch, generator=None)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        # fixed views per batch, so that val_loss is comparable from epoch to epoch
        generator = torch.Generator(device=x.device).manual_seed(batch_idx)
        loss = self._loss(x, y, generator)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True)


# ---------------------------------------------------------------- downstream score


@torch.no_grad()
def knn_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor, k: int = 1) -> float:
    """Accuracy of a k-nearest-neighbour vote on L2-normalised embeddings (cosine); ties -> lowest label.

    Raises:
        ValueError: If the shapes do not match or ``k`` is not in 1..len(train_z).
    """
    if train_z.ndim != 2 or test_z.ndim != 2 or train_z.shape[1] != test_z.shape[1]:
        raise ValueError(
            f"`train_z`, `test_z` must be (n, d), same d, got {tuple(train_z.shape)}, {tuple(test_z.shape)}."
        )
    if len(train_y) != len(train_z) or len(test_y) != len(test_z):
        raise ValueError(
            f"`train_y`, `test_y` need one label per row, got {len(train_y)} for {len(train_z)} train rows, "
            f"{len(test_y)} for {len(test_z)} test rows."
        )
    if not 1 <= k <= len(train_z):
        raise ValueError(f"`k` must be in 1..{len(train_z)}, got {k}.")
    similarity = F.normalize(test_z.float(), dim=1) @ F.normalize(train_z.float(), dim=1).T
    neighbour_labels = train_y[similarity.topk(k, dim=1).indices]  # (n_test, k)
    votes = F.one_hot(neighbour_labels, int(train_y.max()) + 1).sum(1)
    return (votes.argmax(1) == test_y).float().mean().item()
