"""``KNNAccuracy``, and the clean-level state the callback keeps once for the spectral scores and k-NN."""

from __future__ import annotations

import math

import pytest
import torch
from reference_knn import tied_representations

from rmqm_callback import KNNAccuracy, SpectralScores
from rmqm_callback.functional import knn_accuracy
from rmqm_callback.metrics._clean_level import CleanLevelScores


def _blocks(n: int, size: int, seed: int) -> list[torch.Tensor]:
    """The probe indices in blocks of ``size``, the blocks in a shuffled order."""
    blocks = list(torch.arange(n).split(size))
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    return [blocks[i] for i in order]


@pytest.mark.parametrize(("size", "seed"), [(1, 0), (7, 1), (40, 2)])
def test_blocks_in_any_order_give_the_functional_value(size, seed):
    x, labels = tied_representations(40, seed=5)
    metric = KNNAccuracy(k=4)
    for block in _blocks(40, size, seed):
        metric.update(x[block], labels[block].to(torch.int16), block)
    assert metric.compute().item() == knn_accuracy(x, labels, k=4).item()


def test_nan_where_no_accuracy_exists():
    metric = KNNAccuracy(k=3)
    metric.update(torch.randn(3, 2), torch.arange(3))  # 3 probes: no 3 others each
    assert math.isnan(metric.compute().item())
    metric.reset()
    metric.update(torch.tensor([[1.0, float("nan")], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.arange(4))
    assert math.isnan(metric.compute().item())


def test_labels_are_checked_on_update():
    metric = KNNAccuracy()
    with pytest.raises(TypeError, match=r"KNNAccuracy.*class labels, but its labels are torch.float32"):
        metric.update(torch.randn(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=r"KNNAccuracy.*4 representations but 3 labels"):
        metric.update(torch.randn(4, 2), torch.arange(3))
    with pytest.raises(ValueError, match=r"`k` must be >= 1"):
        KNNAccuracy(k=0)


def test_the_clean_level_scores_share_one_state_for_both_computations():
    x, labels = tied_representations(30, seed=3)
    both, spectral = CleanLevelScores(spectral=True, knn=2), SpectralScores()
    for block in _blocks(30, 8, 0):
        both.update(x[block], block, labels[block])
        spectral.update(x[block], block)
    assert [name for name in both._defaults if name not in ("width",)] == ["rows", "indices", "labels"]
    assert sum(part.numel() for part in both.rows) == 30 * 8  # one copy of the N x d representations
    assert both.compute() == {**spectral.compute(), "knn_accuracy": knn_accuracy(x, labels, k=2)}


def test_the_clean_level_scores_keep_labels_only_for_knn_and_refuse_missing_ones():
    x, labels = tied_representations(10, seed=4)
    spectral_only = CleanLevelScores(spectral=True, knn=None)
    spectral_only.update(x, None, labels.double())  # labels it does not use are not read
    assert set(spectral_only.compute()) == {"RankMe", "alpha_ReQ"} and not spectral_only.labels
    with pytest.raises(ValueError, match=r"CleanLevelScores\(knn=1\) needs the probe's labels"):
        CleanLevelScores(spectral=False, knn=1).update(x, None, None)


def test_labels_given_with_some_updates_only_are_an_error():
    metric = KNNAccuracy()
    metric.update(torch.randn(4, 2), torch.arange(4))
    metric._add(torch.randn(2, 2), None, None)  # what a subclass that forgot them would do
    with pytest.raises(ValueError, match=r"holds 6 representations but 4 labels"):
        metric.compute()


def test_states_keep_their_dtypes_when_the_holding_module_is_cast():
    holder = torch.nn.Module()
    holder.metric = KNNAccuracy()
    holder.metric.update(torch.randn(5, 3), torch.arange(5))
    holder.to(torch.bfloat16)
    assert holder.metric.rows[0].dtype == torch.float64 and holder.metric.labels[0].dtype == torch.int64
