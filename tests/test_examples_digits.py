import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import math
import warnings

import _augment_images
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from _augment_images import augment
from _data import DATASETS, holdout_split, split_indices
from _data_digits import load_digits_tensors
from _downstream import embed, knn_accuracy
from _encoders import DigitsEncoder
from _losses import nt_xent, triplet_loss_batch_hard, triplet_loss_views
from _methods import METHODS, EncoderModule
from _stats import bootstrap_ci, correlations, markdown_table, min_max, pearson, rankdata, spearman
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture(scope="module")
def digits():
    return load_digits_tensors()


# ---------------------------------------------------------------- data


def test_load_digits_shapes_range_labels(digits):
    images, labels = digits
    assert images.shape == (1797, 1, 8, 8)
    assert images.dtype == torch.float32
    assert labels.shape == (1797,)
    assert labels.dtype == torch.int64
    assert images.min() == 0.0
    assert images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


def test_load_digits_class_filter(digits):
    images, labels = load_digits_tensors(classes=[3, 7])
    assert set(labels.tolist()) == {3, 7}
    assert len(images) == len(labels) == int(((digits[1] == 3) | (digits[1] == 7)).sum())


@pytest.mark.parametrize("classes", [[], [10], [-1, 2]])
def test_load_digits_bad_classes(classes):
    with pytest.raises(ValueError, match=r"`classes` must be a non-empty sequence of digits 0\.\.9"):
        load_digits_tensors(classes=classes)


def test_split_indices_disjoint_complete_deterministic():
    parts = split_indices(101, (0.6, 0.2, 0.2), seed=3)
    assert [len(p) for p in parts] == [61, 20, 20]
    assert sorted(torch.cat(parts).tolist()) == list(range(101))
    again = split_indices(101, (0.6, 0.2, 0.2), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    assert not torch.equal(parts[0], split_indices(101, (0.6, 0.2, 0.2), seed=4)[0])


def test_split_indices_partial_and_bad():
    assert [len(p) for p in split_indices(10, (0.5, 0.2))] == [5, 2]
    with pytest.raises(ValueError, match=r"positive and sum to at most 1, got \(0.8, 0.4\)"):
        split_indices(10, (0.8, 0.4))
    with pytest.raises(ValueError, match="`n` must be >= 1, got 0"):
        split_indices(0)


def test_holdout_split_sizes_disjoint_deterministic():
    train, val, probe = holdout_split(100, probe_size=20, val_fraction=0.15, seed=1)
    assert (len(train), len(val), len(probe)) == (65, 15, 20)
    assert sorted(torch.cat([train, val, probe]).tolist()) == list(range(100))
    again = holdout_split(100, probe_size=20, val_fraction=0.15, seed=1)
    assert all(torch.equal(a, b) for a, b in zip((train, val, probe), again))
    assert len(holdout_split(10, probe_size=3, val_fraction=0.0)[1]) == 0


@pytest.mark.parametrize(("probe_size", "val_fraction"), [(0, 0.1), (5, 1.0), (5, -0.1), (90, 0.1)])
def test_holdout_split_bad(probe_size, val_fraction):
    with pytest.raises(ValueError, match="must leave training data out of 100 samples"):
        holdout_split(100, probe_size, val_fraction)


# ---------------------------------------------------------------- augmentations


@pytest.mark.parametrize(
    "fn",
    [
        augment,
        _augment_images.random_affine,
        _augment_images.random_erasing,
        _augment_images.pixel_noise,
        _augment_images.brightness_contrast,
    ],
)
def test_augmentations_keep_shape_and_range_and_are_seeded(digits, fn):
    x = digits[0][:64]
    out = fn(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    assert torch.equal(out, fn(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, fn(x, torch.Generator().manual_seed(1)))


def test_two_views_differ_but_are_deterministic(digits):
    x = digits[0][:32]
    two_views = DATASETS["digits"].two_views
    v1, v2 = two_views(x, torch.Generator().manual_seed(5))
    w1, w2 = two_views(x, torch.Generator().manual_seed(5))
    assert torch.equal(v1, w1)
    assert torch.equal(v2, w2)
    assert not torch.equal(v1, v2)
    assert not torch.equal(v1, x)


def test_random_erasing_zeroes_a_rectangle():
    x = torch.ones(50, 1, 8, 8)
    out = _augment_images.random_erasing(x, torch.Generator().manual_seed(0), p=1.0, max_size=3)
    erased = (out == 0).sum(dim=(1, 2, 3))
    assert erased.min() >= 1
    assert erased.max() <= 9


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"`x` must be a float batch \(B, C, H, W\), got shape \(8, 8\)"):
        augment(torch.rand(8, 8))


# ---------------------------------------------------------------- encoder and losses


def test_encoder_shapes():
    x = torch.rand(5, 1, 8, 8)
    assert DigitsEncoder(embedding_dim=16)(x).shape == (5, 16)
    encoder = DigitsEncoder(embedding_dim=32, num_classes=10)
    assert encoder.classifier(encoder.backbone(x)).shape == (5, 10)
    assert DigitsEncoder().classifier is None
    with pytest.raises(ValueError, match="`embedding_dim` must be >= 1, got 0"):
        DigitsEncoder(embedding_dim=0)


def test_nt_xent_known_values():
    z = torch.eye(4)
    # identical views, orthogonal images: each row has logit 1/T for the partner, 0 for 2B - 2 others
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 6))
    assert nt_xent(z, z, temperature=t).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(z, z, temperature=0.05).item() < 1e-6  # partner far ahead of every negative
    with pytest.raises(ValueError, match=r"got \(4, 4\), \(3, 4\)"):
        nt_xent(z, z[:3])


def test_triplet_losses_known_values():
    # two tight, well-separated clusters: zero loss; swapped labels: positive loss
    z = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    for mining in ("hard", "all"):
        assert triplet_loss_batch_hard(z, labels, margin=0.2, mining=mining).item() == 0.0
        assert triplet_loss_batch_hard(z, torch.tensor([0, 1, 0, 1]), mining=mining).item() > 0.5
    # no valid triplet (all one label): zero, still differentiable
    zero = triplet_loss_batch_hard(z.requires_grad_(), torch.zeros(4, dtype=torch.int64))
    zero.backward()
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match="`mining` must be one of"):
        triplet_loss_batch_hard(z, labels, mining="semi")
    with pytest.raises(ValueError, match=r"`labels` \(B,\), got \(4, 2\), \(3,\)"):
        triplet_loss_batch_hard(z, labels[:3])
    # views: positive = the same point; negatives at distance sqrt(2) > margin -> zero loss
    eye = torch.eye(3)
    assert triplet_loss_views(eye, eye, margin=0.2).item() == pytest.approx(0.0, abs=1e-5)
    expected = 0.0 + 2.0 - math.sqrt(2)  # d(a, p) = 0, hardest negative sqrt(2), margin 2
    for mining in ("hard", "all"):
        loss = triplet_loss_views(eye, eye, margin=2.0, mining=mining)
        assert loss.item() == pytest.approx(expected, rel=1e-4)
    # anchor 0's negatives at distances sqrt(2) (views of image 1) and 2 (views of image 2), positive at 0
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    hard = triplet_loss_views(anchors, anchors, margin=1.5, mining="hard")
    assert hard.item() == pytest.approx(1.5 - math.sqrt(2), rel=1e-4)  # each anchor: a negative at sqrt(2)
    # "all": per anchor 0 and 2: two terms 1.5 - sqrt(2) and two 0 (inactive); anchor 1: four 1.5 - sqrt(2)
    every = triplet_loss_views(anchors, anchors, margin=1.5)
    assert every.item() == pytest.approx(1.5 - math.sqrt(2), rel=1e-4)
    with pytest.raises(ValueError, match="`mining` must be one of"):
        triplet_loss_views(eye, eye, mining="semi")
    with pytest.raises(ValueError, match="B >= 2"):
        triplet_loss_views(eye[:1], eye[:1])


# ---------------------------------------------------------------- Lightning module


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_one_epoch(digits, method):
    pl.seed_everything(0, verbose=False)
    images, labels = digits
    data = TensorDataset(images[:256], labels[:256])
    train = DataLoader(data, batch_size=32, shuffle=True)
    val = DataLoader(data, batch_size=64)
    model = EncoderModule(method=method, embedding_dim=16, optimizer="sgd" if "triplet" in method else "adam")
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=3,
        limit_val_batches=2,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, train, val)
    for key in ("train_loss", "val_loss"):
        assert torch.isfinite(trainer.callback_metrics[key])
    model.eval()
    with torch.no_grad():
        z = model(images[:10])
    assert z.shape == (10, 16)


def test_encoder_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"`method` must be one of \('cross-entropy', .*got 'simclr'"):
        EncoderModule(method="simclr")
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \('adam', 'sgd'\), got 'rmsprop'"):
        EncoderModule(optimizer="rmsprop")


def test_configure_optimizers():
    sgd = EncoderModule(optimizer="sgd", lr=0.05).configure_optimizers()
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] is True
    assert sgd.defaults["momentum"] == 0.9
    assert sgd.defaults["lr"] == 0.05
    assert isinstance(EncoderModule(optimizer="adam").configure_optimizers(), torch.optim.Adam)


def test_classifier_only_for_supervised_heads():
    assert EncoderModule(method="cross-entropy").encoder.classifier is not None
    assert EncoderModule(method="triplet-entropy").encoder.classifier is not None
    assert EncoderModule(method="nt-xent").encoder.classifier is None


# ---------------------------------------------------------------- kNN accuracy


def test_knn_accuracy_separable_is_one():
    train_z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 2])
    test_z = torch.tensor([[5.0, 0.2], [0.1, 3.0], [-2.0, -0.1], [0.9, -0.1]])
    test_y = torch.tensor([0, 1, 2, 0])
    assert knn_accuracy(train_z, train_y, test_z, test_y) == 1.0


def test_knn_accuracy_known_fraction_and_vote():
    train_z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    train_y = torch.tensor([0, 1, 0, 1])
    # nearest neighbours (by angle): train 0, 1, 2, 3 -> predictions 0, 1, 0, 1; true labels 0, 0, 0, 0
    test_z = torch.tensor([[2.0, 0.1], [0.1, 2.0], [-2.0, 0.1], [0.1, -2.0]])
    test_y = torch.tensor([0, 0, 0, 0])
    assert knn_accuracy(train_z, train_y, test_z, test_y, k=1) == 0.5
    # k = 3 vote: a point near (1, 0.2) has neighbours train 0 (y=0), 1 (y=1), 3 (y=1) -> predicts 1
    near = torch.tensor([[1.0, 0.2]])
    assert knn_accuracy(train_z, train_y, near, torch.tensor([1]), k=3) == 1.0
    assert knn_accuracy(train_z, train_y, near, torch.tensor([0]), k=1) == 1.0


def test_knn_accuracy_bad_inputs():
    z, y = torch.eye(3), torch.arange(3)
    with pytest.raises(ValueError, match=r"must be \(n, d\), same d, got \(3, 3\), \(3, 2\)"):
        knn_accuracy(z, y, z[:, :2], y)
    with pytest.raises(ValueError, match="one label per row, got 2 for 3 train rows"):
        knn_accuracy(z, y[:2], z, y)
    with pytest.raises(ValueError, match=r"`k` must be in 1..3, got 4"):
        knn_accuracy(z, y, z, y, k=4)


def test_embed_batches_and_restores_mode():
    model = DigitsEncoder(embedding_dim=8)
    x = torch.rand(10, 1, 8, 8)
    model.train()
    z = embed(model, x, batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(z, model(x), atol=1e-6)


# ---------------------------------------------------------------- correlation statistics


def test_rankdata_averages_ties():
    assert rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist() == [1.0, 4.0, 2.5, 2.5]
    assert rankdata(np.array([5.0, 5.0, 5.0])).tolist() == [2.0, 2.0, 2.0]


def test_pearson_and_spearman_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    y = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert spearman(x, y) == pytest.approx(1 - 6 * 4 / (5 * 24))  # sum d^2 = 4, no ties
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)  # monotone, not linear
    assert np.isnan(pearson(x, np.ones(5)))
    with pytest.raises(ValueError, match=r"1-D of one length, got shapes \(5,\) and \(4,\)"):
        pearson(x, x[:4])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.5, size=60)
    low, high = bootstrap_ci(x, y, pearson, resamples=500, seed=3)
    assert low < pearson(x, y) < high < 1.0
    assert (low, high) == bootstrap_ci(x, y, pearson, resamples=500, seed=3)
    with pytest.raises(ValueError, match="`resamples` must be >= 1"):
        bootstrap_ci(x, y, pearson, resamples=0)


def test_min_max_and_table():
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([7.0, 7.0])).tolist() == [0.0, 0.0]
    x = np.array([1.0, 2.0, 3.0, 4.0, np.inf])
    rows = correlations({"good": x, "bad": -x}, np.array([0.1, 0.2, 0.3, 0.5, 0.9]), resamples=200)
    assert [row.n for row in rows] == [4, 4]  # the infinite score is left out
    assert rows[0].spearman == pytest.approx(1.0)
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| score | n | Pearson r [95% CI]")
    assert "| good | 4 | +0.98 [" in table
    assert "| bad | 4 | -0.98 [" in table
