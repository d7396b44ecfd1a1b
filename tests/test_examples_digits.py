import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import math
import warnings

import _digits
import pytest
import pytorch_lightning as pl
import torch
from _digits import (
    METHODS,
    DigitsEncoder,
    EncoderModule,
    augment,
    knn_accuracy,
    load_digits_tensors,
    nt_xent,
    split_indices,
    triplet_loss_batch_hard,
    triplet_loss_views,
    two_views,
)
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


# ---------------------------------------------------------------- augmentations


@pytest.mark.parametrize(
    "fn",
    [
        augment,
        _digits.random_affine,
        _digits.random_erasing,
        _digits.pixel_noise,
        _digits.brightness_contrast,
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
    v1, v2 = two_views(x, torch.Generator().manual_seed(5))
    w1, w2 = two_views(x, torch.Generator().manual_seed(5))
    assert torch.equal(v1, w1)
    assert torch.equal(v2, w2)
    assert not torch.equal(v1, v2)
    assert not torch.equal(v1, x)


def test_random_erasing_zeroes_a_rectangle():
    x = torch.ones(50, 1, 8, 8)
    out = _digits.random_erasing(x, torch.Generator().manual_seed(0), p=1.0, max_size=3)
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
