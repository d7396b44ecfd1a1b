"""A probe over the checkpoint budget is kept as what rebuilds and verifies it, not as 294 MiB per checkpoint."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rmqm_callback import GaussianNoise, RMQMCallback
from rmqm_callback.lightning._probe_state import fingerprint

KEY = "rmqm/noise/RMQM"
IMAGES, SIDE = 512, 224
MIB = 2**20


class PooledConv(pl.LightningModule):
    """A conv encoder of 3 x 224 x 224 images that costs little: a strided conv and pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 16, stride=16), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self(x)), y)

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(IMAGES, 3, SIDE, SIDE, generator=generator), torch.randint(0, 2, (IMAGES,), generator=generator)


def _loaders(data):
    dataset = TensorDataset(*data)
    return DataLoader(dataset, batch_size=64, shuffle=True), DataLoader(dataset, batch_size=256)


def _trainer(path, callbacks, max_epochs=1):
    return pl.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(path),
        callbacks=callbacks,
    )


def _fit(path, data, with_callback):
    checkpoint = ModelCheckpoint(dirpath=path, save_last=True)
    callbacks = [checkpoint]
    callback = RMQMCallback(IMAGES, GaussianNoise(levels=3), batch_size=256) if with_callback else None
    if callback is not None:
        callbacks.append(callback)
    pl.seed_everything(0, verbose=False)
    _trainer(path, callbacks).fit(PooledConv(), *_loaders(data))
    return path / "last.ckpt", callback


@pytest.fixture(scope="module")
def runs(images, tmp_path_factory):
    without, _ = _fit(tmp_path_factory.mktemp("without"), images, with_callback=False)
    with_, callback = _fit(tmp_path_factory.mktemp("with"), images, with_callback=True)
    return {"without": without, "with": with_, "callback": callback}


def test_the_checkpoint_holds_at_most_16_mib_more_than_without_the_callback(runs):
    probe_mib = IMAGES * 3 * SIDE * SIDE * 4 / MIB
    assert probe_mib > 290  # what every checkpoint would have carried
    extra = runs["with"].stat().st_size - runs["without"].stat().st_size
    assert extra <= 16 * MIB, f"{extra / MIB:.1f} MiB"
    state = torch.load(runs["with"], weights_only=False)["callbacks"][runs["callback"].state_key]
    record = state["probe"]
    assert record["inputs"] is None and record["source"] == "validation" and record["size"] == IMAGES
    assert record["fingerprint"] == fingerprint(runs["callback"]._probe)


def _messages(run) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run()
    messages = [str(w.message) for w in caught if "RMQMCallback" in str(w.message)]
    return result, [message for message in messages if "the first evaluation" not in message]  # (the cost notice)


def test_validating_the_checkpoint_rebuilds_the_probe_and_logs_the_same_rmqm(runs, images, tmp_path):
    fresh = RMQMCallback(IMAGES, GaussianNoise(levels=3), batch_size=256)
    results, messages = _messages(
        lambda: _trainer(tmp_path, [fresh]).validate(PooledConv(), _loaders(images)[1], ckpt_path=runs["with"])
    )
    assert not messages
    assert results[0][KEY] == runs["callback"].last_results["noise"]["RMQM"]


def test_resuming_rebuilds_the_probe_from_the_same_data_without_a_word(runs, images, tmp_path):
    resumed = RMQMCallback(IMAGES, GaussianNoise(levels=3), batch_size=256)
    fit = _trainer(tmp_path, [resumed], max_epochs=2)
    _, messages = _messages(lambda: fit.fit(PooledConv(), *_loaders(images), ckpt_path=runs["with"]))
    assert not messages
    assert fingerprint(resumed._probe) == fingerprint(runs["callback"]._probe)


def test_resuming_with_changed_data_says_so(runs, images, tmp_path):
    changed = (images[0].flip(0), images[1])  # the same images, in another order
    resumed = RMQMCallback(IMAGES, GaussianNoise(levels=3), batch_size=256)
    fit = _trainer(tmp_path, [resumed], max_epochs=2)
    _, messages = _messages(lambda: fit.fit(PooledConv(), *_loaders(changed), ckpt_path=runs["with"]))
    rebuilt = "rebuilt now from the first 512 samples of the validation data"
    assert any(rebuilt in message and "differs" in message for message in messages)
