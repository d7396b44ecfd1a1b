"""The studies' data-set layer (examples/_data*.py): every data set behind one interface, made without a download."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import _data_glyphs
from _data import DATASETS, all_classes_split, get_dataset, transfer_split
from _data_cache import cached
from _data_mnist1d import make_mnist1d
from _encoders import Encoder


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_data_set_has_the_same_interface(name):
    dataset = get_dataset(name)
    assert dataset.seen == tuple(range(len(dataset.seen))) and not set(dataset.seen) & set(dataset.unseen)
    x = torch.rand(6, *dataset.input_shape)
    encoder = dataset.encoder(16, len(dataset.seen))
    assert isinstance(encoder, Encoder)
    assert encoder(x).shape == (6, 16)
    assert encoder.classifier(encoder(x)).shape == (6, len(dataset.seen))
    assert dataset.encoder(8).classifier is None
    view = dataset.augment(x, torch.Generator().manual_seed(0))
    assert view.shape == x.shape and view.dtype == x.dtype and 0.0 <= view.min() and view.max() <= 1.0
    assert torch.equal(view, dataset.augment(x, torch.Generator().manual_seed(0)))
    v1, v2 = dataset.two_views(x, torch.Generator().manual_seed(1))
    assert not torch.equal(v1, v2) and not torch.equal(v1, x)


def test_describe_and_unknown_names():
    assert DATASETS["digits"].describe(DATASETS["digits"].seen) == "digits 0-4"
    assert DATASETS["glyphs"].describe(DATASETS["glyphs"].unseen) == "letters N-Z"
    assert DATASETS["mnist1d"].describe([3, 7]) == "classes 3, 7"
    with pytest.raises(ValueError, match=r"Unknown data set 'mnist'; choose one of \['digits', 'glyphs', 'mnist1d'\]"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match=r"non-empty sequence of labels 0\.\.9 of digits, got \[10\]"):
        DATASETS["digits"].load([10])


def test_digits_splits_are_train_digits_and_the_correlation_study_s():
    data = transfer_split("digits", 256)
    assert (len(data["train_x"]), len(data["probe_x"]), len(data["fit_x"]), len(data["test_x"])) == (645, 256, 448, 448)
    assert set(data["train_y"].tolist()) == set(range(5)) and set(data["fit_y"].tolist()) == set(range(5, 10))
    assert torch.equal(transfer_split("digits", 256, train_size=100)["train_x"], data["train_x"][:100])
    with pytest.raises(ValueError, match=r"`train_size` must be in 1\.\.645 for digits, got 0"):
        transfer_split("digits", 256, train_size=0)
    split = all_classes_split("digits", 256, seed=0)
    assert (len(split["train_x"]), len(split["val_x"]), len(split["probe_x"])) == (1271, 270, 256)


# ---------------------------------------------------------------- glyphs


def test_glyphs_shapes_range_labels():
    images, labels = _data_glyphs.render_glyphs(per_class=3, seed=0)
    assert images.shape == (78, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [c for c in range(26) for _ in range(3)]
    assert 0.0 <= images.min() and images.max() <= 1.0
    ink = images.flatten(1).amax(1)
    assert ink.min() > 0.5  # every image shows its letter
    assert len({image.numpy().tobytes() for image in images}) == 78  # no two alike


def test_glyphs_are_deterministic_per_image_whatever_the_number_made():
    small, _ = _data_glyphs.render_glyphs(per_class=2, seed=0)
    again, _ = _data_glyphs.render_glyphs(per_class=3, seed=0)
    assert torch.equal(small.view(26, 2, 28, 28), again.view(26, 3, 28, 28)[:, :2])
    other, _ = _data_glyphs.render_glyphs(per_class=2, seed=1)
    assert not torch.equal(small, other)
    with pytest.raises(ValueError, match="`per_class` must be >= 1, got 0"):
        _data_glyphs.render_glyphs(per_class=0)
    with pytest.raises(ValueError, match=r"`label` must be in 0\.\.25, got 26"):
        _data_glyphs.render_glyph(26, 0)


@pytest.mark.parametrize("font", _data_glyphs.FONTS)
def test_every_font_draws_every_letter(font):
    inks = [np.asarray(_data_glyphs._ink(letter, font, 0)) for letter in _data_glyphs.LETTERS]
    assert all(ink.max() == 255 and min(ink.shape) >= 2 for ink in inks)
    assert len({ink.tobytes() for ink in inks}) == 26  # a font that lacks the letters draws 26 equal boxes


# ---------------------------------------------------------------- mnist1d


def test_mnist1d_is_made_locally_scaled_to_0_1_and_leaves_the_global_streams_alone():
    pytest.importorskip("mnist1d")
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002 - what mnist1d reseeds
    signals, labels = make_mnist1d()
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert random.getstate() == python_state
    assert signals.shape == (5000, 1, 40) and signals.dtype == torch.float32
    assert float(signals.min()) == 0.0 and float(signals.max()) == 1.0  # min-max over the whole set
    assert torch.bincount(labels).tolist() == [500] * 10
    assert float(signals.std()) == pytest.approx(0.0999, abs=1e-3)


def test_cache_writes_once_and_reads_back(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return torch.arange(3.0), torch.tensor([1, 2])

    first = cached(tmp_path, "key", make)
    second = cached(tmp_path, "key", make)
    assert len(calls) == 1 and all(torch.equal(a, b) for a, b in zip(first, second))
    assert [path.name for path in tmp_path.iterdir()] == ["key.pt"]
    cached(None, "key", make)
    assert len(calls) == 2
