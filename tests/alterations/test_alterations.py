"""GaussianNoise and PGD: schedules, ranges, determinism, gradients, bad arguments."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from reference_pgd import naive_pgd
from torch import nn

from rmqm_callback import score
from rmqm_callback.alterations import PGD, GaussianNoise, InputAlteration, contrastive_loss
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe, ProbeBatch


def _images(n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _mlp(seed: int = 0, out: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, out)).double()


def _batch(inputs: torch.Tensor, labels: torch.Tensor | None = None, first: int = 0) -> ProbeBatch:
    return ProbeBatch(torch.arange(first, first + inputs.shape[0]), inputs, labels)


# ------------------------------------------------------------------ GaussianNoise


def test_noise_level_zero_is_the_input_exactly():
    x = _images(5)
    noise = GaussianNoise(levels=4)
    assert torch.equal(noise.alter(x, torch.arange(5), 0), x)


@pytest.mark.parametrize(("levels", "max_std"), [(3, 1.0), (100, 1.0), (7, 0.25), (5, 1e-3)])
def test_noise_std_schedule_is_linspace(levels, max_std):
    strengths = GaussianNoise(levels=levels, max_std=max_std).strengths()
    assert strengths.dtype == torch.float64 and strengths.shape == (levels,)
    expected = [max_std * j / (levels - 1) for j in range(levels)]
    assert strengths.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert float(strengths[0]) == 0.0 and float(strengths[-1]) == max_std


def test_noise_empirical_std_per_level_without_clipping():
    noise = GaussianNoise(levels=6, max_std=0.5, clip=None, seed=3)
    x = torch.rand(64, 300, dtype=torch.float64)
    indices = torch.arange(64)
    deltas = []
    for level, eps in enumerate(noise.strengths().tolist()):
        delta = noise.alter(x, indices, level) - x
        if level == 0:
            assert float(delta.abs().max()) == 0.0
            continue
        assert float(delta.std()) == pytest.approx(eps, rel=0.02)
        assert abs(float(delta.mean())) < 5 * eps / math.sqrt(delta.numel())
        deltas.append(delta.flatten() / eps)
    # fresh noise at every level: standardised noises of different levels are uncorrelated
    correlation = torch.corrcoef(torch.stack(deltas))
    assert float((correlation - torch.eye(len(deltas), dtype=torch.float64)).abs().max()) < 0.02


@pytest.mark.parametrize("clip", [(0.0, 1.0), (-0.5, 2.0)])
def test_noise_clipping_keeps_the_range(clip):
    noise = GaussianNoise(levels=5, max_std=2.0, clip=clip)
    lo, hi = clip
    x = lo + (hi - lo) * _images(20)
    for level in range(5):
        altered = noise.alter(x, torch.arange(20), level)
        assert altered.shape == x.shape and altered.dtype == x.dtype
        assert float(altered.min()) >= lo and float(altered.max()) <= hi
    assert float(altered.min()) == lo and float(altered.max()) == hi  # std 2 saturates both ends
    assert torch.equal(altered, (x + 2.0 * noise.noise(torch.arange(20), 4, (1, 4, 4), x.device)).clamp(lo, hi))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_is_keyed_by_seed_probe_and_level_not_by_chunking(dtype):
    noise = GaussianNoise(levels=6, max_std=0.7, clip=None, seed=11)
    n, first = 40, 13  # global indices 13..52 cross several noise blocks
    x = _images(n, dtype=dtype)
    indices = torch.arange(first, first + n)
    for level in (1, 3, 5):
        whole = noise.alter(x, indices, level)
        assert whole.dtype == dtype
        for chunk in (1, 7, 16):
            parts = [noise.alter(x[k : k + chunk], indices[k : k + chunk], level) for k in range(0, n, chunk)]
            assert torch.equal(torch.cat(parts), whole), f"chunks of {chunk} at level {level}"
        permutation = torch.randperm(n, generator=torch.Generator().manual_seed(level))
        assert torch.equal(noise.alter(x[permutation], indices[permutation], level), whole[permutation])
        # a fresh object with the same settings draws the same noise
        assert torch.equal(GaussianNoise(levels=6, max_std=0.7, clip=None, seed=11).alter(x, indices, level), whole)
    # the noise belongs to the global index: shifting the indices changes it
    assert not torch.equal(noise.alter(x, indices + 1, 2), noise.alter(x, indices, 2))


def test_noise_differs_between_seeds_and_levels():
    x = torch.zeros(8, 32)
    indices = torch.arange(8)
    a = GaussianNoise(levels=4, clip=None, seed=0).noise(indices, 2, (32,), x.device)
    b = GaussianNoise(levels=4, clip=None, seed=1).noise(indices, 2, (32,), x.device)
    c = GaussianNoise(levels=4, clip=None, seed=0).noise(indices, 3, (32,), x.device)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    # different probes get different noise too
    assert not torch.allclose(a[0], a[1])


def test_noise_does_not_touch_the_global_rng():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    noise = GaussianNoise(levels=5, clip=None)
    for level in range(5):
        noise.alter(_images(20), torch.arange(20), level)
    assert torch.equal(torch.get_rng_state(), state)
    # and the global seed does not change the noise
    torch.manual_seed(0)
    a = noise.alter(torch.zeros(3, 4), torch.arange(3), 2)
    torch.manual_seed(99)
    assert torch.equal(noise.alter(torch.zeros(3, 4), torch.arange(3), 2), a)


def test_noise_of_an_empty_batch_is_empty():
    out = GaussianNoise(levels=4).alter(torch.empty(0, 3), torch.empty(0, dtype=torch.int64), 2)
    assert out.shape == (0, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"levels": 2}, ValueError, r"`levels` must be >= 3, got 2"),
        ({"levels": 5.0}, TypeError, r"`levels` must be an int, got 5.0"),
        ({"levels": True}, TypeError, r"`levels` must be an int"),
        ({"max_std": -0.1}, ValueError, r"`max_std` must be > 0, got -0.1"),
        ({"max_std": 0}, ValueError, r"`max_std` must be > 0, got 0.0"),
        ({"max_std": math.nan}, ValueError, r"`max_std` must be finite"),
        ({"max_std": "1"}, TypeError, r"`max_std` must be a number"),
        ({"clip": (1.0, 0.0)}, ValueError, r"`clip` must have lo < hi, got lo=1.0, hi=0.0"),
        ({"clip": (0.5, 0.5)}, ValueError, r"lo < hi"),
        ({"clip": (0.0,)}, TypeError, r"`clip` must be a \(lo, hi\) pair"),
        ({"clip": (0.0, math.inf)}, TypeError, r"`clip` bounds must be finite"),
        ({"seed": 1.5}, TypeError, r"`seed` must be an int, got 1.5"),
        ({"seed": "0"}, TypeError, r"`seed` must be an int"),
        ({"seed": -1}, ValueError, r"`seed` must be >= 0, got -1"),
    ],
)
def test_noise_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianNoise(**kwargs)


def test_noise_bad_inputs_raise():
    noise = GaussianNoise(levels=4)
    with pytest.raises(TypeError, match=r"floating-point inputs.*torch.uint8.*/ 255"):
        noise.check_inputs(torch.zeros(2, 3, dtype=torch.uint8), torch.arange(2))
    with pytest.raises(TypeError, match=r"floating-point inputs.*torch.int64"):
        noise.check_inputs(torch.zeros(2, 3, dtype=torch.int64), torch.arange(2))
    with pytest.raises(ValueError, match=r"clip=\(0.0, 1.0\).*inputs span \[-0.5, 1\]"):
        noise.check_inputs(torch.tensor([[-0.5, 1.0]]), torch.arange(1))
    with pytest.raises(ValueError, match=r"inputs span \[0, 255\]"):
        noise.check_inputs(torch.tensor([[0.0, 255.0]]), torch.arange(1))
    # no range check without clip
    GaussianNoise(levels=4, clip=None).check_inputs(torch.tensor([[-3.0, 255.0]]), torch.arange(1))


def test_input_alteration_trajectory_does_not_depend_on_max_batch_size():
    noise = GaussianNoise(levels=7, max_std=0.3)
    model = _mlp()
    batch = _batch(_images(6, dtype=torch.float64), first=20)
    encoder = Encoder(model)
    expected = [encoder(noise.alter(batch.inputs, batch.indices, level)) for level in range(7)]
    for max_batch_size in (1, 6, 13, 1000):
        levels = list(noise.trajectory(batch, encoder, max_batch_size))
        assert len(levels) == 7
        for got, want in zip(levels, expected):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ PGD


def _pgd_iterates(attack: PGD, model: nn.Module, inputs, labels=None, first: int = 0):
    return list(attack.iterates(_batch(inputs, labels, first), Encoder(model)))


@pytest.mark.parametrize("clip", [(0.0, 1.0), None])
def test_pgd_stays_in_the_ball_and_the_range(clip):
    model = _mlp()
    x = _images(8, dtype=torch.float64)
    attack = PGD(levels=12, step_size=0.05, radius=0.2, clip=clip)
    iterates = _pgd_iterates(attack, model, x)
    assert len(iterates) == 12
    assert torch.equal(iterates[0][0], x)
    for j, (xj, representation) in enumerate(iterates):
        assert xj.shape == x.shape and xj.dtype == x.dtype
        assert float((xj - x).abs().max()) <= 0.2 + 1e-12
        assert float((xj - x).abs().max()) <= 0.05 * j + 1e-12
        if clip is not None:
            assert float(xj.min()) >= 0.0 and float(xj.max()) <= 1.0
        torch.testing.assert_close(representation, Encoder(model)(xj), rtol=1e-12, atol=1e-12)
        assert not xj.requires_grad and not representation.requires_grad
    # 11 steps of 0.05 go past the radius: some coordinate reaches the ball's surface
    assert float((iterates[-1][0] - x).abs().max()) == pytest.approx(0.2, abs=1e-12)
    # the default contrastive loss moves the input from the first step on
    assert not torch.equal(iterates[1][0], x)




def test_pgd_one_run_equals_rerunning_from_scratch_for_every_level():
    model = _mlp(seed=1)
    x = _images(6, seed=2, dtype=torch.float64)
    levels, step, radius = 9, 0.03, 0.1
    one_run = [xj for xj, _ in _pgd_iterates(PGD(levels=levels, step_size=step, radius=radius), model, x)]
    clean = model(x).detach()
    for k in range(levels):
        # a fresh attack of k steps (PGD needs levels >= 3; it yields every iterate from x_0 on)
        fresh = _pgd_iterates(PGD(levels=max(k + 1, 3), step_size=step, radius=radius), model, x)
        assert torch.equal(fresh[k][0], one_run[k]), f"level {k}"
        naive = naive_pgd(model, x, k, step, radius, (0.0, 1.0), lambda out: contrastive_loss(out, clean))
        torch.testing.assert_close(one_run[k], naive, rtol=0, atol=1e-12)


def test_pgd_uses_a_user_loss_with_labels():
    model = _mlp(seed=2, out=3)
    x = _images(7, seed=3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    calls = []

    def cross_entropy(output, clean, batch_labels):
        calls.append((output.shape, clean.shape, batch_labels))
        return F.cross_entropy(output, batch_labels, reduction="none")

    attack = PGD(levels=6, step_size=0.04, radius=0.3, loss=cross_entropy)
    iterates = [xj for xj, _ in _pgd_iterates(attack, model, x, labels)]
    assert len(calls) == 5
    assert all(shape == (7, 3) and clean == (7, 3) and torch.equal(y, labels) for shape, clean, y in calls)
    for k, xk in enumerate(iterates):
        expected = naive_pgd(
            model, x, k, 0.04, 0.3, (0.0, 1.0), lambda out: F.cross_entropy(out, labels, reduction="sum")
        )
        torch.testing.assert_close(xk, expected, rtol=0, atol=1e-12)
    default = [xj for xj, _ in _pgd_iterates(PGD(levels=6, step_size=0.04, radius=0.3), model, x)]
    assert not torch.equal(default[-1], iterates[-1])
    # raising the cross-entropy: the loss grows along the trajectory
    with torch.no_grad():
        losses = [float(F.cross_entropy(model(xk), labels)) for xk in iterates]
    assert losses[-1] > losses[0]


def test_pgd_leaves_parameter_gradients_alone():
    model = _mlp()
    x = _images(5, dtype=torch.float64)
    _pgd_iterates(PGD(levels=4, step_size=0.05), model, x)
    assert all(p.grad is None for p in model.parameters())
    existing = [torch.full_like(p, 0.5) for p in model.parameters()]
    for p, g in zip(model.parameters(), existing):
        p.grad = g.clone()
    _pgd_iterates(PGD(levels=4, step_size=0.05), model, x)
    for p, g in zip(model.parameters(), existing):
        assert torch.equal(p.grad, g)


def test_pgd_under_inference_mode_with_inference_tensors():
    model = _mlp()
    x = _images(6, dtype=torch.float64)
    expected = _pgd_iterates(PGD(levels=5, step_size=0.05), model, x)
    with torch.inference_mode():
        inference_x = x.clone()
        assert inference_x.is_inference()
        batch = next(Probe(inference_x).blocks(6))
        got = list(PGD(levels=5, step_size=0.05).iterates(batch, Encoder(model)))
        assert torch.is_inference_mode_enabled()  # the attack does not leak its grad modes
    for (a, ra), (b, rb) in zip(got, expected):
        assert torch.equal(a, b) and torch.equal(ra, rb)
    assert all(p.grad is None for p in model.parameters())


def test_pgd_trajectory_yields_the_iterates_representations():
    model = _mlp()
    batch = _batch(_images(4, dtype=torch.float64))
    attack = PGD(levels=5, step_size=0.05)
    representations = list(attack.trajectory(batch, Encoder(model), max_batch_size=1))
    iterates = list(attack.iterates(batch, Encoder(model)))
    assert len(representations) == 5
    for representation, (_, expected) in zip(representations, iterates):
        assert torch.equal(representation, expected)


def test_pgd_single_probe_with_default_loss_warns():
    model = _mlp()
    with pytest.warns(UserWarning, match=r"at least 2 probes per batch; probe 7 is alone"):
        _pgd_iterates(PGD(levels=3), model, _images(1, dtype=torch.float64), first=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = PGD(levels=3, loss=lambda output, clean, labels: output.square().sum())
        _pgd_iterates(loss, model, _images(1, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"levels": 2}, ValueError, r"`levels` must be >= 3, got 2"),
        ({"levels": "30"}, TypeError, r"`levels` must be an int"),
        ({"step_size": -0.01}, ValueError, r"`step_size` must be > 0, got -0.01"),
        ({"step_size": 0}, ValueError, r"`step_size` must be > 0, got 0.0"),
        ({"radius": -0.3}, ValueError, r"`radius` must be > 0, got -0.3"),
        ({"radius": 0.0}, ValueError, r"`radius` must be > 0, got 0.0"),
        ({"clip": (1, 0)}, ValueError, r"`clip` must have lo < hi, got lo=1, hi=0"),
        ({"loss": "cross_entropy"}, TypeError, r"`loss` must be None or a callable"),
        ({"temperature": 0.0}, ValueError, r"`temperature` must be > 0, got 0.0"),
    ],
)
def test_pgd_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        PGD(**kwargs)


def test_pgd_bad_inputs_raise():
    model = _mlp()
    message = r"PGD needs floating-point inputs in the range \(0.0, 1.0\), got dtype torch.uint8"
    with pytest.raises(TypeError, match=message):
        _pgd_iterates(PGD(levels=3), model, torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    outside = _images(2, dtype=torch.float64)
    outside[0, 0, 0, 0], outside[1, 0, 0, 0] = -0.25, 2.0
    with pytest.raises(ValueError, match=r"clip=\(0.0, 1.0\).*inputs span \[-0.25, 2\]"):
        _pgd_iterates(PGD(levels=3), model, outside)


def test_user_defined_input_alteration_only_needs_alter():
    class Dim(InputAlteration):
        name = "dim"

        def alter(self, inputs, indices, level):
            return inputs * (1 - level / self.levels)

    dim = Dim(levels=4)
    x = _images(3, dtype=torch.float64)
    assert torch.equal(dim.alter(x, torch.arange(3), 0), x)
    assert dim.strengths().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert repr(dim) == "Dim(levels=4)"
    with pytest.raises(ValueError, match=r"`levels` must be >= 3, got 1"):
        Dim(levels=1)
    with pytest.raises(TypeError, match="abstract"):
        InputAlteration(levels=3)


def test_noise_does_not_depend_on_the_default_dtype():
    noise = GaussianNoise(levels=5)
    inputs = torch.full((4, 1, 3, 3), 0.5)
    expected = noise.alter(inputs, torch.arange(4), 3)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # what Lightning's precision="64-true" does
    try:
        assert torch.equal(noise.alter(inputs, torch.arange(4), 3), expected)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=3), PGD(levels=3)], ids=["noise", "pgd"])
def test_non_finite_inputs_are_blamed_on_the_probe_not_the_encoder(alteration):
    inputs = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    inputs[3, 0, 1, 2] = math.nan
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    with pytest.raises(ValueError, match=r"non-finite \(NaN/inf\) inputs for probe 3"):
        score(model, inputs, alteration, batch_size=4)


def test_pgd_settings_name_the_temperature_and_the_loss():
    assert repr(PGD(temperature=0.1)) != repr(PGD(temperature=1.0))
    assert "cross_entropy" in repr(PGD(loss=torch.nn.functional.cross_entropy))
