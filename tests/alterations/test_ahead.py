"""Altering the next levels on a helper thread: same numbers, same manners, errors and early exits handled."""

import threading
import time

import pytest
import torch
from rmqm_asserts import KEYS, assert_matches
from tiny_models import mixed_model, mlp, module_modes, probe_inputs

from rmqm_callback import GaussianNoise, InputAlteration, score
from rmqm_callback.alterations import _ahead, base
from rmqm_callback.evaluation._guest_pass import GUEST_PROBES
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import ProbeBatch


@pytest.fixture
def idle_core(monkeypatch):
    """Pretend torch's intra-op threads leave a core idle, whatever this machine has."""
    monkeypatch.setattr(base, "idle_cores", lambda: 1)


@pytest.fixture
def no_idle_core(monkeypatch):
    monkeypatch.setattr(base, "idle_cores", lambda: 0)


def _ahead_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("rmqm-ahead")]


class ThreadRecordingNoise(GaussianNoise):
    """GaussianNoise that records the thread each level is altered on."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threads: list[int] = []

    def alter(self, inputs, indices, level):
        self.threads.append(threading.get_ident())
        return super().alter(inputs, indices, level)


# ------------------------------------------------------------------ made_ahead


def test_made_ahead_yields_every_item_in_order_from_a_helper_thread():
    threads = []

    def make(item):
        threads.append(threading.get_ident())
        return item * 10

    assert list(_ahead.made_ahead(make, range(7))) == [0, 10, 20, 30, 40, 50, 60]
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert list(_ahead.made_ahead(make, [])) == []
    assert not _ahead_threads()


def test_made_ahead_makes_one_item_ahead_and_no_more():
    made = []
    stream = _ahead.made_ahead(lambda item: made.append(item) or item, list(range(10)))
    assert next(stream) == 0
    assert next(stream) == 1
    deadline = time.monotonic() + 10
    while len(made) < 3 and time.monotonic() < deadline:  # item 2 is made while the caller holds item 1
        time.sleep(0.001)
    time.sleep(0.05)
    assert made == [0, 1, 2]
    stream.close()
    assert not _ahead_threads()


def test_made_ahead_raises_the_error_when_its_item_is_due():
    def make(item):
        if item == 3:
            raise RuntimeError(f"cannot make {item}")
        return item

    received = []
    with pytest.raises(RuntimeError, match="cannot make 3"):
        for item in _ahead.made_ahead(make, range(6)):
            received.append(item)
    assert received == [0, 1, 2]
    assert not _ahead_threads()


def test_made_ahead_closed_early_stops_its_helper():
    made = []
    stream = _ahead.made_ahead(lambda item: made.append(item) or item, list(range(100)))
    assert next(stream) == 0
    stream.close()
    assert not _ahead_threads()
    assert len(made) <= 2


def test_idle_cores_counts_torch_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _ahead.idle_cores()
        torch.set_num_threads(2)
        assert _ahead.idle_cores() == one - 1
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------ in the trajectory and score()


def _trajectory(alteration, max_batch_size=4):
    batch = ProbeBatch(torch.arange(8, 20), probe_inputs(12), None)
    return torch.stack(list(alteration.trajectory(batch, Encoder(mlp()), max_batch_size)))


@pytest.mark.parametrize("max_batch_size", [1, 12, 40])
def test_noise_is_altered_ahead_only_with_an_idle_core_and_gives_the_same_numbers(monkeypatch, max_batch_size):
    monkeypatch.setattr(base, "idle_cores", lambda: 0)
    inline = ThreadRecordingNoise(levels=9, max_std=0.4)
    expected = _trajectory(inline, max_batch_size)
    assert set(inline.threads) == {threading.get_ident()}
    monkeypatch.setattr(base, "idle_cores", lambda: 1)
    ahead = ThreadRecordingNoise(levels=9, max_std=0.4)
    got = _trajectory(ahead, max_batch_size)
    assert threading.get_ident() not in ahead.threads  # made on the helper
    assert torch.equal(got, expected)
    assert not _ahead_threads()


@pytest.mark.usefixtures("idle_core")
def test_a_block_whose_levels_are_all_kept_is_altered_on_the_callers_thread_and_one_written_into_ahead_again():
    noise = ThreadRecordingNoise(levels=9, max_std=0.4, cache_mib=1)
    first = _trajectory(noise)
    assert threading.get_ident() not in noise.threads  # the first evaluation draws its noise on the helper
    noise.threads.clear()
    again = _trajectory(noise)  # every level kept: nothing for a helper to hide
    assert set(noise.threads) == {threading.get_ident()} and torch.equal(again, first)
    noise.alter(probe_inputs(12), torch.arange(8, 20), 4).add_(1.0)  # a kept level written into
    noise.threads.clear()
    third = _trajectory(noise)
    assert threading.get_ident() not in noise.threads and torch.equal(third, first)
    assert not _ahead_threads()


@pytest.mark.usefixtures("idle_core")
def test_impure_user_alterations_stay_on_the_callers_thread():
    threads = []

    class Dim(InputAlteration):
        def alter(self, inputs, indices, level):
            threads.append(threading.get_ident())
            return inputs * (1 - level / self.levels)

    assert Dim.pure is False and GaussianNoise.pure is True
    _trajectory(Dim(levels=5))
    assert set(threads) == {threading.get_ident()}


@pytest.mark.usefixtures("idle_core")
def test_alterations_are_made_ahead_under_inference_mode_even_when_the_caller_tracks_gradients():
    modes = []

    class Recording(GaussianNoise):
        def alter(self, inputs, indices, level):
            modes.append(torch.is_inference_mode_enabled())
            return super().alter(inputs, indices, level)

    with torch.enable_grad():
        representations = _trajectory(Recording(levels=5))
    assert modes and all(modes)
    assert not representations.requires_grad


@pytest.mark.parametrize("batch_size", [1, 3, 7, 20])
def test_score_is_the_same_with_and_without_altering_ahead(monkeypatch, batch_size):
    noise, model, probe = GaussianNoise(levels=11, max_std=0.6), mlp(), probe_inputs()
    monkeypatch.setattr(base, "idle_cores", lambda: 0)
    inline = score(model, probe, noise, batch_size=batch_size)
    monkeypatch.setattr(base, "idle_cores", lambda: 1)
    ahead = score(model, probe, noise, batch_size=batch_size)
    assert_matches(ahead, inline, KEYS["paper"], rel=0)


@pytest.mark.usefixtures("idle_core")
def test_altering_ahead_leaves_modes_buffers_grads_and_rng_alone():
    model = mixed_model()
    modes = module_modes(model)
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    score(model, probe_inputs(10), GaussianNoise(levels=6, max_std=0.3), batch_size=2)
    assert module_modes(model) == modes
    assert model[4].seen and not any(model[4].seen)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.usefixtures("idle_core")
def test_an_error_while_altering_ahead_reaches_the_caller_and_restores_the_model():
    class Failing(GaussianNoise):
        def alter(self, inputs, indices, level):
            if level == 3 and int(indices[0]) >= GUEST_PROBES:  # past score()'s guest pass, in the helper
                raise RuntimeError("noise failed at level 3")
            return super().alter(inputs, indices, level)

    model = mixed_model()
    modes = module_modes(model)
    torch.manual_seed(2)
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="noise failed at level 3"):
        score(model, probe_inputs(10), Failing(levels=6), batch_size=2)
    assert module_modes(model) == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert not _ahead_threads()


@pytest.mark.usefixtures("idle_core")
def test_an_error_in_the_forward_pass_ends_the_helper_at_once():
    # score()'s guest pass calls the model 1 + 6 times (a clean forward, then 6 levels of 2 probes)
    model = mixed_model(fail_on_call=7 + 3)
    with pytest.raises(RuntimeError, match="boom inside forward") as raised:
        score(model, probe_inputs(10), GaussianNoise(levels=6), batch_size=2)
    assert raised.traceback  # the frames (and the trajectory in them) are still referenced here
    assert not _ahead_threads()


@pytest.mark.usefixtures("idle_core")
def test_a_trajectory_left_early_ends_the_helper():
    batch = ProbeBatch(torch.arange(4), probe_inputs(4), None)
    trajectory = GaussianNoise(levels=9).trajectory(batch, Encoder(mlp()), max_batch_size=4)
    next(trajectory)
    assert _ahead_threads()
    trajectory.close()
    assert not _ahead_threads()


class Blur(InputAlteration):
    """A pure alteration that autocast changes: a box blur by conv2d, once per level."""

    pure = True

    def alter(self, inputs, indices, level):
        kernel = torch.full((1, 1, 3, 3), 1 / 9, dtype=inputs.dtype)
        for _ in range(level):
            inputs = torch.nn.functional.conv2d(inputs, kernel, padding=1)
        return inputs


def test_the_helper_alters_under_the_callers_autocast(monkeypatch):
    batch = ProbeBatch(torch.arange(6), torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0)), None)
    encoder = Encoder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5)))
    trajectories = {}
    for ahead in (0, 1):
        monkeypatch.setattr(base, "idle_cores", lambda ahead=ahead: ahead)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            trajectories[ahead] = torch.stack(list(Blur(levels=5).trajectory(batch, encoder, max_batch_size=6)))
    assert trajectories[0].dtype == torch.bfloat16
    assert torch.equal(trajectories[0], trajectories[1])
