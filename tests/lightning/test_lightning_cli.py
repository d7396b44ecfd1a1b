"""``trainer.callbacks: [{class_path: rmqm_callback.RMQMCallback, ...}]`` under both LightningCLIs, fit to the end."""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from unittest import mock

import pytest
import yaml
from lightning_helpers import NAMESPACES, TINY_ENCODERS, loaders

from rmqm_callback import RMQMCallback


class DigitsLikeSteps:
    """The tiny data of the callback tests, as a LightningDataModule of either namespace."""

    def train_dataloader(self):
        return loaders()[0]

    def val_dataloader(self):
        return loaders()[1]


DATA_MODULES = {
    name: type(f"DigitsLike_{name.replace('.', '_')}", (DigitsLikeSteps, namespace.LightningDataModule), {})
    for name, namespace in NAMESPACES.items()
}

NOISE = {"class_path": "rmqm_callback.GaussianNoise", "init_args": {"levels": 6}}
ALTERATIONS = {
    "one": (NOISE, ["noise"]),
    "list": ([NOISE, {"class_path": "rmqm_callback.PGD", "init_args": {"levels": 3, "radius": 0.1}}], ["noise", "pgd"]),
    "dict": (
        {"weak": {**NOISE, "init_args": {"levels": 6, "max_std": 0.2}}, "strong": NOISE},
        ["weak", "strong"],
    ),
}


def _config(tmp_path, alterations) -> str:
    config = {
        "trainer": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "default_root_dir": str(tmp_path),
            "callbacks": [
                {
                    "class_path": "rmqm_callback.RMQMCallback",
                    "init_args": {"probe": 16, "alterations": alterations, "batch_size": 16, "knn": 3},
                }
            ],
        }
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _cli(namespace: str, args: list[str]):
    # a CLI given `args` warns when the process has command-line arguments of its own (pytest's): it has none here
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        return importlib.import_module(f"{namespace}.cli").LightningCLI(
            TINY_ENCODERS[namespace], DATA_MODULES[namespace], args=args, save_config_callback=None
        )


@pytest.mark.parametrize("form", sorted(ALTERATIONS))
@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_yaml_configures_the_callback_and_fit_runs_to_the_end(tmp_path, namespace, form):
    alterations, names = ALTERATIONS[form]
    cli = _cli(namespace, ["fit", "--config", _config(tmp_path, alterations)])
    (callback,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, RMQMCallback)]
    assert list(callback.alterations) == names
    assert cli.trainer.current_epoch == 2  # fit ran to max_epochs
    for name in names:
        assert f"rmqm/{name}/RMQM" in cli.trainer.callback_metrics
    assert len(callback._probe) == 16
    assert callback.knn == 3 and not isinstance(callback.knn, bool)  # `knn: 3` is k, not True
    assert "rmqm/knn_accuracy" in cli.trainer.callback_metrics


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_the_help_of_embed_and_preprocess_reads_sensibly(namespace):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        _cli(namespace, ["fit", "--trainer.callbacks.help", "rmqm_callback.RMQMCallback"])
    text = " ".join(out.getvalue().split())
    assert "--trainer.callbacks.embed EMBED the representation: ``None`` (model output), a submodule name" in text
    assert "(type: Union[str, Callable[[Module, Tensor], Any], null], default: null)" in text
    assert "normalisation), or ``None``. (type: Optional[Callable[[Tensor], Any]], default: null)" in text
    assert "subclass of Tensor" not in text  # a callable, not a class to instantiate
