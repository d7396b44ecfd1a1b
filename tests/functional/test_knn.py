"""``knn_accuracy`` against an independent brute-force leave-one-out k-NN, exact ties included."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_knn import reference_knn_accuracy, tied_representations

import rmqm_callback.functional.knn as knn_module
from rmqm_callback.functional import knn_accuracy


def _reference(x: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return reference_knn_accuracy(x.double().numpy(), labels.numpy(), k)


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("seed", range(3))
def test_equals_the_brute_force_on_continuous_representations(k, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(70, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 4, (70,), generator=generator)
    assert knn_accuracy(x, labels, k).item() == _reference(x, labels, k)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 39])
@pytest.mark.parametrize("seed", range(4))
def test_equals_the_brute_force_with_exact_ties_of_similarities_and_votes(k, seed):
    x, labels = tied_representations(40, seed)
    assert knn_accuracy(x, labels, k).item() == _reference(x, labels, k)


def test_the_tied_data_really_ties_at_the_k_th_neighbour_and_in_the_votes():
    x, labels = tied_representations(40, 0)
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    similarities = unit @ unit.T
    similarities.fill_diagonal_(-2)
    top = similarities.sort(dim=1, descending=True).values
    assert bool((top[:, 2] == top[:, 3]).all())  # the 3rd and 4th neighbours tie for every probe
    neighbour_labels = labels[similarities.sort(dim=1, descending=True, stable=True).indices[:, :2]]
    assert bool((neighbour_labels[:, 0] != neighbour_labels[:, 1]).any())  # 1-1 votes at k = 2


def test_similarity_ties_go_to_the_lower_probe_index():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    # nearest, lower index first: 0 -> 1 (cosines 0, 0, 0), 1 -> 2, 2 -> 1, 3 -> 1 (cosines 1, 1): one right
    # (taking the higher index instead: 0 -> 3, 1 -> 3, 2 -> 3, 3 -> 2, two right)
    assert knn_accuracy(x, torch.tensor([5, 5, 7, 7]), k=1).item() == 0.25


def test_vote_ties_go_to_the_class_of_the_nearest_neighbour():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 0.3], [-1.0, 0.0]], dtype=torch.float64)
    # k = 2, nearest first: 0 -> 1, 2 (classes 1, 2: a tie, class 1); 1 -> 0, 2 (1, 2: class 1);
    # 2 -> 1, 0 (1, 1); 3 -> 2, 1 (2, 1: a tie, class 2). Probes 0, 1 and 3 right; the lower
    # label on ties would get probe 3 wrong (0.5), the higher label probes 0 and 1 (0.25).
    assert knn_accuracy(x, torch.tensor([1, 1, 2, 2]), k=2).item() == 0.75


def test_a_zero_representation_is_equally_similar_to_every_other():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    # 0 -> 1 (cosines 0, 0: the lower index); 1 -> 0 and 2 -> 0 (cosine 0 beats -1)
    assert knn_accuracy(x, torch.tensor([3, 3, 4]), k=1).item() == 2 / 3


@pytest.mark.parametrize("elements", [1, 40, 120, 2**22])
def test_blocks_of_queries_do_not_change_the_value(monkeypatch, elements):
    x, labels = tied_representations(40, 1)
    expected = [_reference(x, labels, k) for k in (1, 4)]
    monkeypatch.setattr(knn_module, "_BLOCK_ELEMENTS", elements)  # 1 row at a time ... all rows at once
    assert [knn_accuracy(x, labels, k).item() for k in (1, 4)] == expected


@pytest.mark.parametrize(
    "dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.bool]
)
def test_labels_of_every_integer_dtype_and_bool(dtype):
    x, labels = tied_representations(40, 2)
    labels = labels % 2 if dtype == torch.bool else labels * 50  # 0, 50, 100: values, not positions
    expected = _reference(x, labels.to(torch.int64), 3)
    assert knn_accuracy(x, labels.to(dtype), k=3).item() == expected


def test_cosine_similarity_ignores_each_representations_scale_and_float32_is_read_as_float64():
    generator = torch.Generator().manual_seed(3)
    x, labels = torch.randn(50, 5, generator=generator), torch.randint(0, 3, (50,), generator=generator)
    scales = torch.rand(50, 1, generator=generator) * 100 + 0.01
    assert knn_accuracy(x, labels, 5).item() == knn_accuracy(x.double() * scales, labels, 5).item()
    assert knn_accuracy(x, labels, 5).dtype == torch.float64


#: Directions whose unit vectors and cosines are exact in binary floating point (entries 0, +-1 or +-1/2),
#: so that equal cosines are equal floats whatever the order of the sums: the zero vector, +-e_i, and
#: the 16 sign patterns of (+-1, +-1, +-1, +-1).
EXACT_DIRECTIONS = [
    [0, 0, 0, 0],
    *([sign * (i == j) for j in range(4)] for i in range(4) for sign in (1, -1)),
    *([1 - 2 * ((pattern >> j) & 1) for j in range(4)] for pattern in range(16)),
]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=2, max_value=16).flatmap(
        lambda n: st.tuples(
            st.lists(st.tuples(st.sampled_from(EXACT_DIRECTIONS), st.integers(1, 3)), min_size=n, max_size=n),
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
            st.integers(min_value=1, max_value=n - 1),
        )
    )
)
def test_any_probe_of_few_exact_directions_equals_the_brute_force(case):
    rows, labels, k = case  # few directions, so ties everywhere
    x = torch.tensor([[scale * value for value in direction] for direction, scale in rows], dtype=torch.float64)
    assert knn_accuracy(x, torch.tensor(labels), k).item() == reference_knn_accuracy(x.numpy(), labels, k)


@pytest.mark.parametrize(
    ("representations", "labels", "k", "error", "match"),
    [
        (torch.ones(4, 2), torch.ones(4), 1, TypeError, r"must be class labels, but its labels are torch.float32"),
        (torch.ones(4, 2), torch.ones(4, 1).long(), 1, ValueError, r"labels have shape \(4, 1\), not \(N,\)"),
        (torch.ones(4, 2), [0, 1, 0, 1], 1, TypeError, r"its labels are a list, not a tensor"),
        (torch.ones(4, 2), torch.arange(3), 1, ValueError, r"4 representations but 3 labels"),
        (torch.ones(4, 2), torch.arange(4), 4, ValueError, r"k = 4 needs at least 5 representations, got N = 4"),
        (torch.ones(4, 2), torch.arange(4), 0, ValueError, r"`k` must be >= 1, got 0"),
        (torch.ones(4, 2), torch.arange(4), True, TypeError, r"`k` must be an int, got True"),
        (torch.ones(4, 2, dtype=torch.int64), torch.arange(4), 1, TypeError, r"floating-point tensor, got torch.int64"),
        (torch.ones(4), torch.arange(4), 1, ValueError, r"must be 2-D \(N, d\), got shape \(4,\)"),
        (torch.tensor([[1.0], [float("nan")], [1.0]]), torch.arange(3), 1, ValueError, r"must be finite"),
    ],
)
def test_bad_inputs_are_refused_with_what_was_received(representations, labels, k, error, match):
    with pytest.raises(error, match=match):
        knn_accuracy(representations, labels, k)

