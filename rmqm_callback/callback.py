"""``RMQMCallback``: RMQM of the model's representation at epoch ends, logged through Lightning."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from rmqm_callback._callback_checks import (
    RESULT_KEYS,
    check_distinct_keys,
    check_monitors,
    check_strategy,
    named_alterations,
)
from rmqm_callback._checks import check_bool, check_convention, check_int
from rmqm_callback._plotting import matplotlib_available, plot_curves
from rmqm_callback._progress import progress_bar
from rmqm_callback._trainer_probe import probe_from_trainer
from rmqm_callback.alterations import Alteration, InputAlteration
from rmqm_callback.encoder import EmbedRule, Encoder, check_embed_and_preprocess
from rmqm_callback.keys import CURVES_KEY, LOGGED_QUANTITIES, REFERENCE_QUANTITIES, SECONDS_KEY, metric_key
from rmqm_callback.metric import RMQM
from rmqm_callback.probe import Probe, as_probe, materialize
from rmqm_callback.scoring import ProgressHook, accumulate, guest_of


class RMQMCallback(Callback):
    r"""Measure the representation manifold's quality (RMQM) at epoch ends, with no labels.

    At the end of validation in every epoch ``e`` with ``(e + 1) % every_n_epochs == 0`` (at the
    end of the training epoch when the run does not validate or that validation had no batches;
    never during the sanity check; every epoch under ``fast_dev_run``) the callback alters a
    fixed probe set with each alteration, embeds every level on ``pl_module.device`` in eval
    mode, and logs through ``pl_module.log``, so every logger, ``trainer.callback_metrics``,
    ``EarlyStopping`` and ``ModelCheckpoint`` see ``{prefix}/{name}/RMQM``, ``/D``, ``/D_RC``,
    ``/P_RC``, their standard errors ``/D_se``... and ``/seconds`` (see :mod:`rmqm_callback.keys`).
    With a ``TensorBoardLogger`` and matplotlib, the per-level curves are added as a figure.

    It is a guest in the run: weights, ``.grad``, BatchNorm statistics, train/eval modes,
    optimizer state and the global random streams are left as they were. Under DDP each
    process scores a disjoint shard of the probe and the metric is synced, so every process logs
    the single-process value.

    Args:
        probe: a tensor, an ``(inputs, labels)`` pair, a ``Dataset``, a ``DataLoader``, or an int
            ``n``: the first ``n`` samples of the validation data (else the training data), in
            dataset order, taken at the start of training. The probe is kept fixed and saved in
            checkpoints.
        alterations: one :class:`~rmqm_callback.Alteration`, a list, or a ``{name: alteration}``
            dict; default :class:`~rmqm_callback.GaussianNoise` (logged as ``noise``).
        every_n_epochs: evaluate every n epochs.
        embed: ``None`` (model output), a submodule name, or ``callable(model, inputs)``.
        preprocess: applied to altered inputs before the model (e.g. mean/std normalisation).
        batch_size: probes per block and most inputs per forward pass.
        convention: ``"paper"`` or ``"reference"``.
        normalize: L2-normalise representations before measuring distances.
        prefix: first part of every logged key.
        log_curves: add the curve figure to TensorBoard loggers.
        progress: show a progress bar on process 0; ``None`` follows the trainer's progress bar.

    Raises:
        TypeError / ValueError: a bad argument; the message names it. At the start of ``fit``,
            before training: a probe outside an alteration's input contract, a model output the
            ``embed`` rule cannot make ``(batch, d)``, a sharded strategy, another
            ``RMQMCallback`` logging the same keys, or a monitor that would miss RMQM's epochs.

    Example::

        from pytorch_lightning import Trainer
        from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
        from rmqm_callback import RMQMCallback

        trainer = Trainer(callbacks=[
            ModelCheckpoint(monitor="rmqm/noise/RMQM", mode="max"),
            EarlyStopping(monitor="rmqm/noise/RMQM", mode="max", patience=3),
            RMQMCallback(probe=512),
        ])

    """

    def __init__(
        self,
        probe: Any,
        alterations: Alteration | list[Alteration] | Mapping[str, Alteration] | None = None,
        *,
        every_n_epochs: int = 1,
        embed: EmbedRule = None,
        preprocess: Callable[[Tensor], Tensor] | None = None,
        batch_size: int = 256,
        convention: str = "paper",
        normalize: bool = True,
        prefix: str = "rmqm",
        log_curves: bool = True,
        progress: bool | None = None,
    ) -> None:
        if isinstance(probe, int) and not isinstance(probe, bool):
            self.probe_size: int | None = check_int("probe", probe, minimum=1)
            self._probe: Probe | None = None
        else:
            self.probe_size = None
            self._probe = as_probe(probe)
        self.alterations = named_alterations(alterations)
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, minimum=1)
        check_embed_and_preprocess(embed, preprocess)
        self.embed = embed
        self.preprocess = preprocess
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.convention = check_convention(convention)
        self.normalize = check_bool("normalize", normalize)
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"`prefix` must be a non-empty string, got {prefix!r}.")
        self.prefix = prefix
        self.log_curves = check_bool("log_curves", log_curves)
        if progress is not None:
            check_bool("progress", progress)
        self.progress = progress
        self.last_results: dict[str, dict[str, float]] = {}
        self._metrics = {name: RMQM(convention=convention, normalize=normalize) for name in self.alterations}
        self._evaluated_epoch: int | None = None

    @property
    def key_prefixes(self) -> set[str]:
        """``{prefix}/{name}`` of every alteration: the start of every key this callback logs."""
        return {f"{self.prefix}/{name}" for name in self.alterations}

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(prefix=self.prefix, alterations=self._settings()["alterations"])

    def _settings(self) -> dict[str, Any]:
        """The configuration saved in checkpoints (and compared on resume, see :meth:`_comparable`)."""
        return {
            "alterations": {name: repr(alt) for name, alt in self.alterations.items()},
            "every_n_epochs": self.every_n_epochs,
            "batch_size": self.batch_size,
            "convention": self.convention,
            "normalize": self.normalize,
            "prefix": self.prefix,
        }

    def _comparable(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings that change the logged values: not ``every_n_epochs``; ``batch_size`` only for PGD."""
        batch_matters = not all(isinstance(alteration, InputAlteration) for alteration in self.alterations.values())
        ignored = {"every_n_epochs"} | (set() if batch_matters else {"batch_size"})
        return {key: value for key, value in settings.items() if key not in ignored}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._evaluated_epoch = None
            check_strategy(trainer.strategy)
            check_distinct_keys(trainer.callbacks, self, self.key_prefixes)  # type: ignore[attr-defined]
            check_monitors(
                trainer.callbacks,  # type: ignore[attr-defined]
                self.every_n_epochs,
                self.prefix,
                trainer.check_val_every_n_epoch,
                trainer.enable_validation,
            )
            Encoder(pl_module, embed=self.embed, preprocess=self.preprocess)  # a wrong submodule name fails now

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after a checkpoint restore (which brings its own probe) and after Lightning loaded the
        # validation data for epoch 0; if validation starts later, the first evaluation takes it
        validation_not_loaded = trainer.enable_validation and trainer.val_dataloaders is None
        if self._probe is None and not validation_not_loaded:
            self._probe = probe_from_trainer(trainer, self.probe_size)  # type: ignore[arg-type]
        elif self._probe is not None:
            self._probe = materialize(self._probe)  # a Dataset or DataLoader is read once, here
        if self._probe is not None:
            self._check_probe(trainer, pl_module, self._probe)

    def _check_probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, probe: Probe) -> None:
        """Fail before the first epoch, not after it: the alterations' input checks and one guest forward pass."""
        for alteration in self.alterations.values():
            alteration.check_inputs(probe.inputs, torch.arange(len(probe)))
        first = trainer.precision_plugin.convert_input(probe.inputs[:2]).to(pl_module.device)
        encoder = Encoder(pl_module, embed=self.embed, preprocess=self.preprocess)
        # no_grad, not inference_mode: a cache the model builds on its first forward (positional
        # tables...) must stay usable by training, which has not run yet
        with guest_of(pl_module, pl_module.device), trainer.precision_plugin.val_step_context():
            with torch.no_grad():
                encoder(first)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._due(trainer):
            self._evaluate(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # (validation at the epoch's end has already run): the run does not validate, or this
        # epoch's validation had no batches (an empty validation set)
        validation_due = isinstance(trainer.check_val_every_n_epoch, int) and (
            (trainer.current_epoch + 1) % trainer.check_val_every_n_epoch == 0
        )
        missed = not trainer.enable_validation or (validation_due and self._evaluated_epoch != trainer.current_epoch)
        if missed and self._due(trainer):
            self._evaluate(trainer, pl_module)

    def _due(self, trainer: pl.Trainer) -> bool:
        every_n_epochs = 1 if trainer.fast_dev_run else self.every_n_epochs  # a smoke test runs everything
        return (
            trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and (trainer.current_epoch + 1) % every_n_epochs == 0
        )

    def _probe_for(self, trainer: pl.Trainer) -> Probe:
        if self._probe is None:  # an int probe whose validation data was not loaded at train start
            self._probe = probe_from_trainer(trainer, self.probe_size)  # type: ignore[arg-type]
        if trainer.fast_dev_run:
            labels = None if self._probe.labels is None else self._probe.labels[: self.batch_size]
            return Probe(self._probe.inputs[: self.batch_size], labels)
        return self._probe

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluated_epoch = trainer.current_epoch
        probe = self._probe_for(trainer)
        probe = Probe(trainer.precision_plugin.convert_input(probe.inputs), probe.labels)
        encoder = Encoder(pl_module, embed=self.embed, preprocess=self.preprocess)
        tensorboards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        draw = self.log_curves and bool(tensorboards) and matplotlib_available()
        for name, alteration in self.alterations.items():
            results, curves = self._measure(trainer, pl_module, probe, encoder, name, alteration, draw)
            self._log(pl_module, name, results)
            if curves is not None and trainer.is_global_zero:
                label = f"epoch {trainer.current_epoch}"
                figure, _ = plot_curves(curves, strengths=alteration.strengths(), label=label)
                tag = metric_key(self.prefix, name, CURVES_KEY)
                for logger in tensorboards:
                    logger.experiment.add_figure(tag, figure, global_step=trainer.global_step)

    def _measure(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        probe: Probe,
        encoder: Encoder,
        name: str,
        alteration: Alteration,
        with_curves: bool,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Score this process's shard, sync, and return the results (and curves) of every process."""
        metric = self._metrics[name].to(pl_module.device)
        metric.reset()
        start = time.perf_counter()
        # autocast for input alterations; PGD's input gradients stay in full precision
        autocast = isinstance(alteration, InputAlteration)
        precision = trainer.precision_plugin.val_step_context() if autocast else nullcontext()
        with guest_of(pl_module, pl_module.device), precision:
            skipped = accumulate(
                metric,
                encoder,
                probe,
                alteration,
                batch_size=self.batch_size,
                device=pl_module.device,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
                progress=self._progress_bar(trainer, name),
                skip_non_finite=True,
            )
        # every process takes the same branch: the count is summed over processes first
        skipped = int(trainer.strategy.reduce(torch.tensor(float(skipped), device=pl_module.device), reduce_op="sum"))
        if skipped:
            rank_zero_warn(
                f"RMQMCallback[{name}]: the model gave non-finite (NaN/inf) representations for {skipped} probes"
                " (have the weights diverged?); logging NaN for this evaluation."
            )
            # on the module's device: Lightning syncs logged tensors where they are (NCCL needs the GPU)
            results = {key: torch.tensor(math.nan, dtype=torch.float64, device=pl_module.device) for key in RESULT_KEYS}
            curves = None
        else:
            results = metric.compute()  # collective under DDP: every process calls it
            curves = metric.curves() if with_curves else None
        results[SECONDS_KEY] = results["RMQM"].new_tensor(time.perf_counter() - start)
        metric.reset()
        return results, curves

    def _log(self, pl_module: pl.LightningModule, name: str, results: dict[str, Tensor]) -> None:
        quantities = LOGGED_QUANTITIES + (REFERENCE_QUANTITIES if self.convention == "reference" else ())
        for quantity in (*quantities, SECONDS_KEY):
            # every process holds the same synced value: "max" syncs it exactly and without a warning
            pl_module.log(
                metric_key(self.prefix, name, quantity),
                results[quantity],
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                reduce_fx="max",
            )
        self.last_results[name] = {key: float(value) for key, value in results.items()}
        left_out = max(float(results["D_RC_left_out"]), float(results["P_RC_left_out"]))
        if left_out > 0:  # False for the NaN of a diverged model, already reported
            rank_zero_warn(
                f"RMQMCallback[{name}]: {left_out:.0f} of {float(results['num_probes']):.0f} probes were left out"
                " of a spike component (zero distances between levels): part of the representation has collapsed."
            )

    def _same_probe(self, saved: Probe, saved_size: int | None) -> bool:
        """Whether ``saved`` is the probe this callback was given (an int probe: asked for the same size)."""
        if self._probe is None:
            return self.probe_size is None or self.probe_size == (len(saved) if saved_size is None else saved_size)
        given = self._probe = materialize(self._probe)  # a Dataset or DataLoader is read now, not at train start
        same_labels = (given.labels is None) == (saved.labels is None) and (
            given.labels is None or torch.equal(given.labels.cpu(), saved.labels)  # type: ignore[union-attr]
        )
        same_inputs = given.inputs.shape == saved.inputs.shape and torch.equal(given.inputs.cpu(), saved.inputs)
        return same_inputs and same_labels

    def _progress_bar(self, trainer: pl.Trainer, name: str) -> ProgressHook | None:
        wanted = trainer.progress_bar_callback is not None if self.progress is None else self.progress
        return progress_bar(f"RMQM {name}") if wanted and trainer.is_global_zero else None

    @override
    def state_dict(self) -> dict[str, Any]:
        probe = self._probe if type(self._probe) is Probe else None
        return {
            "probe_inputs": None if probe is None else probe.inputs.cpu(),
            "probe_size": self.probe_size,  # what an int probe asked for (the data may have had fewer)
            "probe_labels": None if probe is None or probe.labels is None else probe.labels.cpu(),
            "settings": self._settings(),
            "last_results": dict(self.last_results),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inputs = state_dict.get("probe_inputs")
        if inputs is not None:
            saved_probe = Probe(inputs, state_dict.get("probe_labels"))
            if not self._same_probe(saved_probe, state_dict.get("probe_size")):
                rank_zero_warn(
                    f"RMQMCallback: resuming with the checkpoint's probe ({len(saved_probe)} samples), not the"
                    f" probe passed to this callback, so that the values stay comparable across the run."
                )
            self._probe = saved_probe
        self.last_results = dict(state_dict.get("last_results", {}))
        saved = state_dict.get("settings")
        if saved is not None and self._comparable(saved) != self._comparable(self._settings()):
            rank_zero_warn(
                f"RMQMCallback: the checkpoint was saved with settings {saved}, this callback has"
                f" {self._settings()}; the values logged after resuming are not comparable with the earlier ones."
            )
