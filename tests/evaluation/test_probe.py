"""Probe: block-cyclic sharding over ranks, Dataset and DataLoader probes, bad probes."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rmqm_callback.evaluation.probe import DatasetProbe, LoaderProbe, Probe, as_probe, materialize


class Squares(Dataset):
    """A map-style dataset of (input, label) pairs whose values reveal their index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return torch.full((2, 3), float(index)), index % 3


def _inputs(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 2, 3).clone()


def _probes(n: int):
    inputs, labels = _inputs(n), torch.arange(n) % 3
    yield "tensor", Probe(inputs, labels)
    yield "pair", as_probe((inputs, labels))
    yield "dataset", as_probe(Squares(n))
    yield "tensor-dataset", as_probe(TensorDataset(inputs, labels))
    for loader_batch in (1, 3, 5, 16):
        yield f"loader-{loader_batch}", as_probe(DataLoader(TensorDataset(inputs, labels), batch_size=loader_batch))


@pytest.mark.parametrize("n", [1, 5, 16, 17])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 2, 4, 16])
def test_block_cyclic_sharding_is_disjoint_and_complete(n, world_size, batch_size):
    for kind, probe in _probes(n):
        assert len(probe) == n
        seen: list[int] = []
        for rank in range(world_size):
            batches = list(probe.blocks(batch_size, rank=rank, world_size=world_size))
            expected_blocks = list(range(rank, -(-n // batch_size), world_size))
            assert len(batches) == len(expected_blocks), (kind, rank)  # ranks past the last block get none
            for block, batch in zip(expected_blocks, batches):
                start = block * batch_size
                assert batch.indices.tolist() == list(range(start, min(start + batch_size, n))), (kind, rank)
                assert batch.indices.dtype == torch.int64
                # the inputs are the samples at those indices, in order, with their labels
                assert batch.inputs[:, 0, 0].tolist() == [float(i) for i in batch.indices], kind
                assert batch.labels.tolist() == [i % 3 for i in batch.indices.tolist()], kind
                seen.extend(batch.indices.tolist())
        assert sorted(seen) == list(range(n)), kind
        assert len(seen) == len(set(seen)), kind


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_loader_regrouping_yields_the_tensor_probe_blocks(world_size):
    inputs, labels = _inputs(23), torch.arange(23) % 3
    tensor_probe = Probe(inputs, labels)
    for loader_batch in (1, 4, 7, 30):
        loader_probe = as_probe(DataLoader(TensorDataset(inputs, labels), batch_size=loader_batch))
        assert isinstance(loader_probe, LoaderProbe)
        for rank in range(world_size):
            want = list(tensor_probe.blocks(5, rank=rank, world_size=world_size))
            got = list(loader_probe.blocks(5, rank=rank, world_size=world_size))
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert torch.equal(a.indices, b.indices)
                assert torch.equal(a.inputs, b.inputs)
                assert torch.equal(a.labels, b.labels)


def test_loader_without_labels():
    inputs = _inputs(7)
    probe = as_probe(DataLoader(TensorDataset(inputs), batch_size=3))
    batches = list(probe.blocks(4))
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6]]
    assert all(b.labels is None for b in batches)
    assert torch.equal(torch.cat([b.inputs for b in batches]), inputs)
    plain = as_probe(DataLoader(inputs, batch_size=2))  # batches are bare tensors
    assert torch.equal(torch.cat([b.inputs for b in plain.blocks(3)]), inputs)


def test_shuffled_loader_warns():
    loader = DataLoader(TensorDataset(_inputs(6)), batch_size=2, shuffle=True)
    with pytest.warns(UserWarning, match="shuffles.*shuffle=False"):
        as_probe(loader)


def test_dataset_probe_and_materialize():
    probe = as_probe(Squares(6))
    assert isinstance(probe, DatasetProbe)
    in_memory = materialize(probe)
    assert type(in_memory) is Probe
    assert torch.equal(in_memory.inputs, _inputs(6))
    assert in_memory.labels.tolist() == [0, 1, 2, 0, 1, 2]
    tensor_probe = Probe(_inputs(3))
    assert materialize(tensor_probe) is tensor_probe
    assert as_probe(tensor_probe) is tensor_probe


def test_batch_to_keeps_indices_on_cpu():
    batch = next(Probe(_inputs(3), torch.arange(3)).blocks(3))
    moved = batch.to("cpu")
    assert torch.equal(moved.indices, batch.indices) and torch.equal(moved.inputs, batch.inputs)


@pytest.mark.parametrize(
    ("probe", "error", "match"),
    [
        (torch.zeros(0, 3), ValueError, r"`probe` is empty: inputs of shape \(0, 3\)"),
        (torch.tensor(1.0), ValueError, r"`probe` is empty"),
        ((torch.zeros(4, 3), torch.zeros(5)), ValueError, r"4 inputs but labels of shape \(5,\)"),
        ((torch.zeros(4, 3), [0, 1, 2, 3]), TypeError, r"labels must be a tensor, got list"),
        (TensorDataset(torch.zeros(0, 3)), ValueError, r"`probe` is an empty Dataset"),
        ([1, 2, 3], TypeError, r"`probe` must be a tensor.*got list"),
        ("probe.pt", TypeError, r"got str"),
    ],
)
def test_bad_probes_raise(probe, error, match):
    with pytest.raises(error, match=match):
        as_probe(probe)


def test_empty_loader_raises_when_read():
    probe = as_probe(DataLoader(TensorDataset(torch.zeros(0, 3)), batch_size=2))
    with pytest.raises(ValueError, match="DataLoader yielded no samples"):
        list(probe.blocks(4))


def test_dict_items_raise_a_clear_error():
    class DictDataset(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return {"image": torch.zeros(2), "label": 0}

    with pytest.raises(TypeError, match="is a dict"):
        list(as_probe(DictDataset()).blocks(2))


class _Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        for index in range(11):
            yield torch.full((3,), float(index)), index


def test_loader_over_an_iterable_dataset_has_unknown_length_and_reads_to_the_end():
    probe = as_probe(DataLoader(_Stream(), batch_size=4))
    assert probe.num_blocks(5) is None
    blocks = list(probe.blocks(5, rank=1, world_size=2))
    assert [b.indices.tolist() for b in blocks] == [[5, 6, 7, 8, 9]]
    assert materialize(probe, limit=7).labels.tolist() == list(range(7))


def test_an_iterable_dataset_itself_asks_for_a_loader():
    with pytest.raises(TypeError, match=r"IterableDataset: pass DataLoader"):
        as_probe(_Stream())
