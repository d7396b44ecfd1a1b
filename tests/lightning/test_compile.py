"""A ``torch.compile``d backbone: the callback evaluates it eagerly and leaves the training graph alone."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_helpers import TinyEncoder
from test_callback import _train
from torch._dynamo.utils import counters

from rmqm_callback import PGD, GaussianNoise, score
from rmqm_callback.evaluation.probe import Probe


class CompiledBackbone(TinyEncoder):
    """The tiny model with its backbone compiled (default inductor settings)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.compile(self.backbone)


def _fit(tmp_path, with_callback: bool, alteration):
    torch._dynamo.reset()
    counters.clear()
    module, streams, checked = _train(tmp_path, CompiledBackbone, with_callback, alteration, "validation")
    return module, streams[0], checked, counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("alteration", [GaussianNoise(levels=6), PGD(levels=3)], ids=["noise", "pgd"])
def test_a_compiled_backbone_trains_bit_identical_weights_and_compiles_no_other_graph(tmp_path, alteration):
    plain, plain_rng, _, plain_graphs = _fit(tmp_path / "plain", False, alteration)
    guest, guest_rng, checked, guest_graphs = _fit(tmp_path / "guest", True, alteration)
    assert checked == 3  # the snapshot compared the module around each of the 3 evaluations
    assert plain_graphs > 0 and guest_graphs == plain_graphs  # no recompile of the training graph
    for (name, expected), (_, actual) in zip(plain.state_dict().items(), guest.state_dict().items()):
        assert torch.equal(expected, actual), name
    assert torch.equal(plain_rng, guest_rng)


def test_score_of_a_compiled_model_equals_the_eager_score():
    pl.seed_everything(0, verbose=False)
    eager = TinyEncoder().eval()
    compiled = torch.compile(eager)
    probe = Probe(torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    torch._dynamo.reset()
    counters.clear()
    noise = GaussianNoise(levels=5)
    assert score(compiled, probe, noise)["RMQM"] == score(eager, probe, noise)["RMQM"]
    assert counters["stats"]["unique_graphs"] == 0  # run eagerly: nothing compiled
