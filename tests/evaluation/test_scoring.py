"""score(): the numbers, every kind of probe, a guest's manners towards the model, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from reference_pgd import naive_pgd
from rmqm_asserts import KEYS, assert_matches
from tiny_models import LEVELS, N, mixed_model, mlp, module_modes, probe_inputs
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rmqm_callback import PGD, GaussianNoise, InputAlteration, score
from rmqm_callback.alterations import contrastive_loss
from rmqm_callback.functional import knn_accuracy, rmqm


def _labels(n: int = N) -> torch.Tensor:
    return torch.arange(n) % 3




def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.25


@torch.no_grad()
def _by_hand_noise(encode, x, noise, convention="paper"):
    """Every level of every probe with the same GaussianNoise.alter, stacked (N, L, d), then rmqm."""
    indices = torch.arange(x.shape[0])
    levels = [encode(noise.alter(x, indices, level)) for level in range(noise.levels)]
    return rmqm(torch.stack(levels, dim=1), convention=convention)


class PairDataset(Dataset):
    def __init__(self, inputs, labels) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], self.labels[index]


def _probe_kinds(x, y):
    return {
        "tensor": x,
        "pair": (x, y),
        "tensor-dataset": TensorDataset(x, y),
        "custom-dataset": PairDataset(x, y),
        "loader-5": DataLoader(TensorDataset(x, y), batch_size=5),
    }


# ------------------------------------------------------------------ the numbers


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("kind", ["tensor", "pair", "tensor-dataset", "custom-dataset", "loader-5"])
def test_noise_score_equals_rmqm_of_the_stacked_trajectories(batch_size, kind):
    model, x = mlp(), probe_inputs()
    noise = GaussianNoise(levels=LEVELS, max_std=0.4, seed=5)
    probe = _probe_kinds(x, _labels())[kind]
    result = score(model, probe, noise, preprocess=_normalise, batch_size=batch_size)
    expected = _by_hand_noise(lambda inputs: model(_normalise(inputs)), x, noise)
    assert_matches(result, expected, KEYS["paper"], rel=1e-9)
    assert float(result["num_probes"]) == N


@pytest.mark.parametrize("normalize", [True, False])
def test_noise_score_reference_convention(normalize):
    model, x = mlp(), probe_inputs()
    noise = GaussianNoise(levels=LEVELS, max_std=0.4)
    result = score(model, x, noise, batch_size=8, convention="reference", normalize=normalize)
    with torch.no_grad():
        levels = [model(noise.alter(x, torch.arange(N), j)) for j in range(LEVELS)]
    expected = rmqm(torch.stack(levels, dim=1), convention="reference", normalize=normalize)
    assert_matches(result, expected, KEYS["reference"], rel=1e-9)


def test_preprocess_is_applied_after_the_noise():
    model, x = mlp(), probe_inputs()
    noise = GaussianNoise(levels=LEVELS, max_std=0.4)
    result = score(model, x, noise, preprocess=_normalise)
    # noise in the normalised range (the wrong order) gives other numbers
    wrong = GaussianNoise(levels=LEVELS, max_std=0.4, clip=None)
    other = _by_hand_noise(model, _normalise(x), wrong)
    assert not math.isclose(float(result["D"]), float(other["D"]), rel_tol=1e-3)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_pgd_score_with_cross_entropy_equals_the_rerun_trajectory(batch_size):
    model, x, y = mlp(seed=3, out=3), probe_inputs(12), _labels(12)

    def loss(output, clean, labels):
        return F.cross_entropy(output, labels, reduction="none")

    attack = PGD(levels=5, step_size=0.03, radius=0.1, loss=loss)
    result = score(model, (x, y), attack, batch_size=batch_size)
    levels = []
    for k in range(5):
        xk = naive_pgd(model, x, k, 0.03, 0.1, (0.0, 1.0), lambda out: F.cross_entropy(out, y, reduction="sum"))
        with torch.no_grad():
            levels.append(model(xk))
    assert_matches(result, rmqm(torch.stack(levels, dim=1)), KEYS["paper"], rel=1e-9)


def test_pgd_score_default_loss_batches_probes_in_blocks():
    model, x = mlp(seed=4), probe_inputs(11)
    attack = PGD(levels=4, step_size=0.03, radius=0.1)
    result = score(model, x, attack, batch_size=4)
    blocks = []
    for start in range(0, 11, 4):  # the documented blocks [kB, (k+1)B)
        xb = x[start : start + 4]
        clean = model(xb).detach()
        levels = []
        for k in range(4):
            xk = naive_pgd(model, xb, k, 0.03, 0.1, (0.0, 1.0), lambda out, c=clean: contrastive_loss(out, c))
            with torch.no_grad():
                levels.append(model(xk))
        blocks.append(torch.stack(levels, dim=1))
    assert_matches(result, rmqm(torch.cat(blocks)), KEYS["paper"], rel=1e-9)


def test_pgd_score_inside_inference_mode():
    model, x = mlp(), probe_inputs(8)
    attack = PGD(levels=4, step_size=0.03)
    expected = score(model, x, attack, batch_size=4)
    with torch.inference_mode():
        inference_x = x.clone()
        result = score(model, inference_x, attack, batch_size=4)
    assert_matches(result, expected, KEYS["paper"], rel=0)


def test_user_defined_input_alteration_works_with_score():
    class Dim(InputAlteration):
        name = "dim"

        def alter(self, inputs, indices, level):
            return inputs * (1 - level / (2 * self.levels)) + 0.01 * level * indices.view(-1, 1, 1, 1)

    model, x = mlp(), probe_inputs(9) * 0.5
    dim = Dim(levels=5)
    result = score(model, x, dim, batch_size=4)
    with torch.no_grad():
        levels = [model(dim.alter(x, torch.arange(9), j)) for j in range(5)]
    assert_matches(result, rmqm(torch.stack(levels, dim=1)), KEYS["paper"], rel=1e-9)


class TwoHeads(nn.Module):
    """Returns (representation, logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = mlp()
        self.head = nn.Linear(6, 3).double()

    def forward(self, x):
        representation = self.body(x)
        return representation, self.head(representation)


def test_embed_rules():
    x = probe_inputs()
    noise = GaussianNoise(levels=LEVELS, max_std=0.4)
    model = mlp()
    hidden = _by_hand_noise(lambda inputs: model[:3](inputs), x, noise)
    # a submodule name (forward hook) and a callable give the hidden layer
    assert_matches(score(model, x, noise, embed="2"), hidden, KEYS["paper"], rel=1e-9)
    assert_matches(score(model, x, noise, embed=lambda m, inputs: m[:3](inputs)), hidden, KEYS["paper"], rel=1e-9)
    # a tuple output: its first element
    two_heads = TwoHeads()
    first = _by_hand_noise(two_heads.body, x, noise)
    assert_matches(score(two_heads, x, noise), first, KEYS["paper"], rel=1e-9)
    assert_matches(
        score(two_heads, x, noise, embed="head"),
        _by_hand_noise(lambda i: two_heads(i)[1], x, noise),
        KEYS["paper"],
        rel=1e-9,
    )


# ------------------------------------------------------------------ a polite guest








@pytest.mark.parametrize("alteration", [GaussianNoise(levels=4, max_std=0.3), PGD(levels=4, step_size=0.03)])
def test_modes_batchnorm_rng_and_grads_are_left_alone(alteration):
    model = mixed_model()
    modes = module_modes(model)
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    grads = [p.grad.clone() for p in model.parameters()]
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    score(model, probe_inputs(10), alteration, batch_size=4)
    assert module_modes(model) == modes
    assert model[4].seen and not any(model[4].seen)  # every forward ran in eval mode
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    assert int(model[2].num_batches_tracked) == 0
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)
    assert torch.equal(torch.get_rng_state(), rng)


def test_grads_stay_none():
    model = mlp()
    score(model, probe_inputs(6), GaussianNoise(levels=3), batch_size=3)
    score(model, probe_inputs(6), PGD(levels=3), batch_size=3)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=4), PGD(levels=4)])
def test_modes_and_rng_restored_after_an_error_in_forward(alteration):
    model = mixed_model(fail_on_call=3)
    modes = module_modes(model)
    torch.manual_seed(3)
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"the model failed on the guest trajectory of .* at levels? .*boom inside"):
        score(model, probe_inputs(10), alteration, batch_size=4)  # the guest pass calls forward 3 times or more
    assert len(model[4].seen) == 3
    assert module_modes(model) == modes
    assert torch.equal(torch.get_rng_state(), rng)


class RandomConsumer(nn.Module):
    """Draws from the global RNG in forward (as a stochastic layer would), without changing its output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        return self.net(x) + 0.0 * torch.rand_like(x).sum()


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=4), PGD(levels=4)])
def test_global_rng_unchanged_by_a_model_that_draws_random_numbers(alteration):
    model = RandomConsumer()
    torch.manual_seed(11)
    rng = torch.get_rng_state()
    first = score(model, probe_inputs(8), alteration, batch_size=4)
    assert torch.equal(torch.get_rng_state(), rng)
    second = score(model, probe_inputs(8), alteration, batch_size=4)
    assert_matches(second, first, KEYS["paper"], rel=0)


# ------------------------------------------------------------------ bad input


class Returns(nn.Module):
    def __init__(self, make) -> None:
        super().__init__()
        self.make = make
        self.weight = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        return self.make(x)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (Returns(lambda x: x.sum()), r"The model's output gave a tensor of shape \(\) .*\(batch=2, d\)"),
        (Returns(lambda x: {"embedding": x.flatten(1)}), r"The model's output gave a dict, which is not a tensor"),
        (Returns(lambda x: x.flatten(1)[:1]), r"shape \(1, 16\).*\(batch=2, d\)"),
        (Returns(lambda x: x.flatten(1).long()), r"dtype torch.int64.*floating"),
        (Returns(lambda x: x.flatten(1)[:, :0]), r"shape \(2, 0\)"),
        (Returns(lambda x: x.flatten()), r"shape \(32,\)"),
    ],
)
def test_model_output_that_cannot_be_a_batch_of_vectors_raises(model, match):
    # the guest pass of score()'s first 2 probes finds it
    with pytest.raises(ValueError, match=match):
        score(model, probe_inputs(8), GaussianNoise(levels=3), batch_size=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"probe": torch.empty(0, 1, 4, 4)}, ValueError, r"`probe` is empty"),
        ({"probe": TensorDataset(torch.empty(0, 1, 4, 4))}, ValueError, r"empty Dataset"),
        ({"probe": DataLoader(TensorDataset(torch.empty(0, 1, 4, 4)))}, ValueError, r"yielded no samples"),
        ({"probe": "images/"}, TypeError, r"`probe` must be a tensor.*got str"),
        ({"probe": (255 * probe_inputs(8)).to(torch.uint8)}, TypeError, r"floating-point inputs.*torch.uint8"),
        ({"probe": 255 * probe_inputs(8)}, ValueError, r"raw input range clip=\(0.0, 1.0\)"),
        ({"embed": "encoder"}, ValueError, r"`embed`='encoder' names no submodule.*'0', '1', '2', '3'"),
        ({"embed": 3}, TypeError, r"`embed` must be None, a submodule name or a callable, got 3"),
        ({"embed": lambda m, x: None}, ValueError, r"`embed` callable gave a NoneType"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be >= 1, got 0"),
        ({"batch_size": 2.5}, TypeError, r"`batch_size` must be an int, got 2.5"),
        ({"convention": "released"}, ValueError, r"`convention` must be one of .*got 'released'"),
        ({"normalize": None}, TypeError, r"`normalize` must be a bool"),
        ({"alteration": "noise"}, TypeError, r"`alteration` must be an .*Alteration.*got str"),
        ({"alteration": GaussianNoise}, TypeError, r"`alteration` must be .*got ABCMeta"),
        ({"device": "meta"}, ValueError, r"`device`=meta is not where the model is \(cpu\)"),
        ({"device": "cuda"}, ValueError, r"`device`=cuda is not where the model is"),
        ({"preprocess": "normalise"}, TypeError, r"`preprocess` must be None or a callable"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"probe": probe_inputs(8), "alteration": GaussianNoise(levels=3), **kwargs}
    with pytest.raises(error, match=match):
        score(mlp(), arguments.pop("probe"), arguments.pop("alteration"), **arguments)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module, got function"):
        score(lambda x: x, probe_inputs(4), GaussianNoise(levels=3))


def test_non_finite_representation_raises():
    model = Returns(lambda x: torch.where(x.flatten(1) > 2, x.flatten(1), x.flatten(1) / 0.0 * 0.0))
    with pytest.raises(ValueError, match=r"non-finite \(NaN/inf\) representation for probe 0"):
        score(model, probe_inputs(4), GaussianNoise(levels=3), batch_size=2)


class WithUnusedPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()
        self.unused = nn.Linear(2, 2).double()

    def forward(self, x):
        return self.net(x)


def test_unused_submodule_raises():
    model = WithUnusedPart()
    with pytest.raises(ValueError, match=r"`embed`='unused': that submodule was not called"):
        score(model, probe_inputs(4), GaussianNoise(levels=3), embed="unused")


def test_score_reads_a_loader_over_an_iterable_dataset():
    images = torch.rand(13, 1, 4, 4, generator=torch.Generator().manual_seed(5))

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(images)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6))
    loader = DataLoader(Stream(), batch_size=3)
    from_loader = score(model, loader, GaussianNoise(levels=5), batch_size=4)
    from_tensor = score(model, images, GaussianNoise(levels=5), batch_size=4)
    assert float(from_loader["RMQM"]) == float(from_tensor["RMQM"])
    assert int(from_loader["num_probes"]) == 13


def test_pgd_user_loss_gets_the_model_output_with_a_callable_embed():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    shapes = []

    def loss(output, clean, labels):
        shapes.append(tuple(output.shape))
        return F.cross_entropy(output, labels)

    def features(m, x):
        m(x)  # the callable calls the model: its output reaches the loss
        return m[2](m[1](m[0](x)))

    inputs = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 3
    score(model, (inputs, labels), PGD(levels=3, loss=loss), embed=features, batch_size=8)
    assert set(shapes) == {(2, 3), (8, 3)}  # the guest pass of 2 probes, then the batch of 8
    with pytest.raises(ValueError, match="did not call the model"):
        score(model, (inputs, labels), PGD(levels=3, loss=loss), embed=lambda m, x: m[1](m[0](x)), batch_size=8)


# ------------------------------------------------------------------ the k-NN accuracy of a labelled probe


@pytest.mark.parametrize("kind", ["pair", "tensor-dataset", "custom-dataset", "loader-5"])
def test_a_labelled_probe_of_any_kind_adds_its_knn_accuracy(kind):
    model, x, y = mlp(), probe_inputs(), _labels().to(torch.uint8)
    result = score(model, _probe_kinds(x, y)[kind], GaussianNoise(levels=4), batch_size=7, knn=2)
    with torch.no_grad():
        expected = knn_accuracy(model(x), y, k=2)
    assert result["knn_accuracy"].item() == expected.item()


def test_knn_true_adds_nothing_for_a_probe_without_class_labels_and_knn_k_requires_them():
    model, x = mlp(), probe_inputs()
    for probe in (x, (x, _labels().float()), (x, torch.zeros(N, 2, dtype=torch.int64))):
        assert "knn_accuracy" not in score(model, probe, GaussianNoise(levels=3))
    assert "knn_accuracy" not in score(model, (x, _labels()), GaussianNoise(levels=3), knn=False)
    with pytest.raises(ValueError, match=r"score\(knn=3\) computes the k-NN accuracy .*: it has no labels"):
        score(model, x, GaussianNoise(levels=3), knn=3)
    with pytest.raises(ValueError, match=r"score\(knn=True\): leave-one-out k-NN with k = 1 needs at least 2 probes"):
        score(model, (x[:1], _labels(1)), GaussianNoise(levels=3))
    with pytest.raises(ValueError, match=r"`knn` must be True, False or an int k >= 1, got 0"):
        score(model, x, GaussianNoise(levels=3), knn=0)
