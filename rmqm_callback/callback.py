"""``RMQMCallback``: RMQM of the model's representation at epoch ends, logged through Lightning."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from rmqm_callback._callback_checks import check_distinct_keys, check_strategy, check_trainer, named_alterations
from rmqm_callback._checks import check_bool, check_convention, check_int, check_number
from rmqm_callback._evaluation import ProgressHook, check_set_up, measure
from rmqm_callback._lightning import LightningCallback, LightningModule, Trainer
from rmqm_callback._plotting import matplotlib_available, plot_curves
from rmqm_callback._probe_state import MIB, fingerprint, probe_record, record_from_state, stored_probe
from rmqm_callback._progress import progress_bar
from rmqm_callback._recorded import alteration_spec, callable_spec
from rmqm_callback._schedule import EvaluationSchedule, check_monitors
from rmqm_callback._tensorboard import epoch_log_step, layout, tensorboard_loggers
from rmqm_callback._trainer_probe import probe_from_trainer
from rmqm_callback.alterations import Alteration, InputAlteration
from rmqm_callback.encoder import EmbedRule, Encoder, check_embed_and_preprocess
from rmqm_callback.keys import (
    CURVES_KEY,
    D_PREV_KEY,
    D_RC_LEFT_OUT_KEY,
    LOGGED_QUANTITIES,
    NON_FINITE_KEY,
    P_RC_LEFT_OUT_KEY,
    REFERENCE_QUANTITIES,
    SECONDS_KEY,
    SPECTRAL_QUANTITIES,
    callback_key,
    metric_key,
    se_key,
)
from rmqm_callback.metric import RMQM
from rmqm_callback.probe import Probe, as_probe, materialize
from rmqm_callback.spectral_metric import SpectralScores

#: ``RMQM.compute`` result -> logged quantity, for the quantities logged as they are.
_RESULT_QUANTITIES = {
    "RMQM": "RMQM",
    "D": "D",
    "D_RC": "D_RC",
    "P_RC": "P_RC",
    "D_se": se_key("D"),
    "D_RC_se": se_key("D_RC"),
    "P_RC_se": se_key("P_RC"),
}
_REFERENCE_RESULT_QUANTITIES = {"D_prev": D_PREV_KEY, "D_prev_se": se_key(D_PREV_KEY)}


class RMQMCallback(LightningCallback):
    r"""Measure the representation manifold's quality (RMQM) at epoch ends, with no labels.

    A ``Callback`` of ``pytorch_lightning`` and of ``lightning.pytorch``: one instance works with
    either ``Trainer`` and with either ``LightningCLI``. At the end of validation in every epoch
    ``e`` with ``(e + 1) % every_n_epochs == 0`` (at the end of the training epoch when the run
    does not validate or its validation set is empty; never during the sanity check; every epoch
    under ``fast_dev_run``), and at the end of ``trainer.validate()``, the callback alters a fixed
    probe set with each alteration, embeds every level on ``pl_module.device`` in eval mode, and
    logs through ``pl_module.log``, so every logger, ``trainer.callback_metrics``,
    ``EarlyStopping`` and ``ModelCheckpoint`` see ``{prefix}/{name}/RMQM``, ``/D``, ``/D_RC``,
    ``/P_RC``, the shares of probes left out (``/left_out/D_RC``, ``/left_out/P_RC``,
    ``/left_out/non_finite``), the standard errors (``/se/D``...) and ``/seconds``; and, once per
    callback, the collapse signals ``{prefix}/RankMe`` and ``{prefix}/alpha_ReQ`` of the clean
    probe (see :mod:`rmqm_callback.keys`). With a ``TensorBoardLogger`` and matplotlib, the
    per-level curves are added as a figure.

    It is a guest in the run: weights, ``.grad``, BatchNorm statistics, train/eval modes,
    optimizer state, compiled graphs and the global random streams are left as they were
    (``torch.compile``d modules run eagerly during the evaluation). Under DDP each process scores
    a disjoint shard of the probe and the metrics are synced, so every process logs the
    single-process value.

    Args:
        probe: a tensor, an ``(inputs, labels)`` pair, a ``Dataset``, a ``DataLoader``, or an int
            ``n``: the first ``n`` samples of the validation data (the training data when the
            evaluations follow the training epochs), in dataset order, taken at the start of
            every ``fit`` (and of ``validate``). The probe is kept fixed for the run.
        alterations: one :class:`~rmqm_callback.Alteration`, a list, or a ``{name: alteration}``
            dict; default :class:`~rmqm_callback.GaussianNoise` (logged as ``noise``).
        every_n_epochs: evaluate every n epochs.
        embed: the representation: ``None`` (model output), a submodule name, or
            ``callable(model, inputs)``.
        preprocess: a callable applied to altered inputs before the model (e.g. mean/std
            normalisation), or ``None``.
        batch_size: probes per block and most inputs per forward pass.
        convention: ``"paper"`` or ``"reference"``.
        normalize: L2-normalise representations before measuring distances.
        prefix: first part of every logged key.
        log_curves: add the curve figure to TensorBoard loggers (needs matplotlib: the ``plot`` extra).
        progress: show a progress bar on process 0; ``None`` follows the trainer's progress bar.
        spectral: log RankMe and alpha-ReQ of the clean probe (from the level-0 representations
            of the first alteration: no extra forward pass).
        checkpoint_probe_mib: the most MiB of probe stored in each checkpoint. A larger probe is
            stored as what rebuilds and verifies it (an int probe: its dataset indices; every
            probe: a fingerprint), and rebuilt from the data on resume.

    Raises:
        TypeError / ValueError: a bad argument; the message names it. At the start of ``fit``,
            before training: a probe the model fails on, outside an alteration's input contract,
            or an alteration whose output is not like its input (one guest trajectory of two
            probes through every alteration), a model output the ``embed`` rule cannot make
            ``(batch, d)``, a sharded strategy, ``Trainer(barebones=True)``, another
            ``RMQMCallback`` logging the same keys, or a monitor that would miss RMQM's epochs.

    Example::

        from pytorch_lightning import Trainer
        from pytorch_lightning.callbacks import ModelCheckpoint
        from rmqm_callback import RMQMCallback

        trainer = Trainer(callbacks=[
            RMQMCallback(probe=512),
            ModelCheckpoint(monitor="rmqm/noise/RMQM", mode="max", save_top_k=-1),
        ])

    """

    def __init__(
        self,
        probe: Any,
        alterations: Alteration | list[Alteration] | Mapping[str, Alteration] | None = None,
        *,
        every_n_epochs: int = 1,
        embed: EmbedRule = None,
        preprocess: Callable[[Tensor], Any] | None = None,
        batch_size: int = 256,
        convention: str = "paper",
        normalize: bool = True,
        prefix: str = "rmqm",
        log_curves: bool = True,
        progress: bool | None = None,
        spectral: bool = True,
        checkpoint_probe_mib: float = 16.0,
    ) -> None:
        if isinstance(probe, int) and not isinstance(probe, bool):
            self.probe_size: int | None = check_int("probe", probe, minimum=1)
            self._probe: Probe | None = None
            self._probe_source = "data"
        else:
            self.probe_size = None
            self._probe = as_probe(probe)
            self._probe_source = "given"
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
        self.spectral = check_bool("spectral", spectral)
        self.checkpoint_probe_mib = check_number("checkpoint_probe_mib", checkpoint_probe_mib)
        self.last_results: dict[str, dict[str, float]] = {}
        self.last_spectral: dict[str, float] = {}
        self._metrics = {name: RMQM(convention=convention, normalize=normalize) for name in self.alterations}
        self._spectrum = SpectralScores() if spectral else None
        self._evaluated_epoch: int | None = None
        self._schedule: EvaluationSchedule | None = None  # when the running fit evaluates (from on_train_start)
        self._resumed: dict[str, Any] | None = None  # a checkpoint's record of a probe it did not store
        self._precision: str | None = None
        self._said: set[str] = set()  # one-time messages already given

    @property
    def logged_keys(self) -> set[str]:
        """Every scalar key this callback logs (the monitors' keys are checked against them)."""
        quantities = LOGGED_QUANTITIES + (REFERENCE_QUANTITIES if self.convention == "reference" else ())
        keys = {metric_key(self.prefix, name, q) for name in self.alterations for q in (*quantities, SECONDS_KEY)}
        if self.spectral:
            keys |= {callback_key(self.prefix, quantity) for quantity in SPECTRAL_QUANTITIES}
        return keys

    @property
    def key_prefixes(self) -> set[str]:
        """The start of every key this callback logs: ``{prefix}/{name}`` per alteration, and the spectral keys."""
        keys = {f"{self.prefix}/{name}" for name in self.alterations}
        if self.spectral:
            keys |= {callback_key(self.prefix, quantity) for quantity in SPECTRAL_QUANTITIES}
        return keys

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

    def _recorded(self) -> dict[str, Any]:
        """What ``rmqm score`` needs to evaluate as this callback did (see :mod:`rmqm_callback._recorded`)."""
        return {
            "alterations": {name: alteration_spec(alteration) for name, alteration in self.alterations.items()},
            "embed": callable_spec(self.embed),
            "preprocess": callable_spec(self.preprocess),
            "batch_size": self.batch_size,
            "convention": self.convention,
            "normalize": self.normalize,
            "prefix": self.prefix,
            "precision": self._precision,
        }

    def _comparable(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings that change the logged values: not ``every_n_epochs``; ``batch_size`` only for PGD."""
        batch_matters = not all(isinstance(alteration, InputAlteration) for alteration in self.alterations.values())
        ignored = {"every_n_epochs"} | (set() if batch_matters else {"batch_size"})
        return {key: value for key, value in settings.items() if key not in ignored}

    def _encoder(self, pl_module: LightningModule) -> Encoder:
        return Encoder(pl_module, embed=self.embed, preprocess=self.preprocess)

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        check_trainer(trainer)
        check_strategy(trainer.strategy)
        check_distinct_keys(getattr(trainer, "callbacks", []), self, self.key_prefixes)
        self._encoder(pl_module)  # a wrong submodule name fails now
        self._said.discard("layout")  # each run's TensorBoard logger gets the layout
        self._schedule = None
        if stage == "fit":
            self._evaluated_epoch = None
            self._resumed = None
            if self.probe_size is not None:
                self._probe = None  # taken afresh in every fit (a checkpoint being resumed brings its own)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after a checkpoint restore (which brings its own probe) and after the training data loaded
        schedule = self._schedule = EvaluationSchedule.of(trainer, self.every_n_epochs)
        check_monitors(trainer, schedule, self.logged_keys, self.prefix)
        self._precision = str(trainer.precision)
        self._prepare_probe(trainer, pl_module, schedule.source)

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "validate":
            return
        ckpt_path = trainer.ckpt_path
        if ckpt_path is not None:  # Lightning restores callbacks only in fit: score the checkpoint's probe
            states = trainer.strategy.load_checkpoint(ckpt_path).get("callbacks", {})  # tensors stay on the CPU
            state = states.get(self.state_key)
            if state is not None:
                self.load_state_dict(state)
            elif any(str(key).startswith("RMQMCallback") for key in states):
                rank_zero_warn(
                    f"RMQMCallback: {ckpt_path} holds the state of RMQMCallbacks with other alterations or prefix, not"
                    f" of this one ({self.state_key}): its probe is not used, this callback's is."
                )
        self._prepare_probe(trainer, pl_module, "validation")

    def _prepare_probe(self, trainer: Trainer, pl_module: LightningModule, source: str) -> None:
        """Take (or read) the probe, verify it against a checkpoint's record, and send two probes through everything."""
        if self._probe is None:
            count = self.probe_size
            resumed = self._resumed
            if resumed is not None and resumed.get("source") in ("validation", "training"):
                # rebuild what the checkpoint's probe was: the same samples of the same data
                source, count = resumed["source"], resumed.get("requested") or resumed["size"]
            self._probe = probe_from_trainer(trainer, count, source)  # type: ignore[arg-type]
            self._probe_source = source
        else:
            self._probe = materialize(self._probe)  # a Dataset or DataLoader is read once, here
        if self._resumed is not None:
            self._verify_rebuilt_probe(self._probe, self._resumed)
            self._resumed = None
        if len(self._probe) == 1 and "one probe" not in self._said:
            self._said.add("one probe")
            rank_zero_warn(
                "RMQMCallback: the probe has a single sample, so the standard errors over probes (se/...) are NaN:"
                " they need at least 2 probes. Pass a larger probe for error bars."
            )
        check_set_up(
            "RMQMCallback",
            pl_module,
            self._encoder(pl_module),
            self._probe,
            self.alterations,
            precision=trainer.precision_plugin,
            device=pl_module.device,
            batch_size=self.batch_size,
            convention=self.convention,
            normalize=self.normalize,
        )

    def _verify_rebuilt_probe(self, probe: Probe, record: dict[str, Any]) -> None:
        if fingerprint(probe) != record["fingerprint"]:
            origin = (
                f"the first {record['size']} samples of the {record['source']} data"
                if record["source"] in ("validation", "training")
                else "the probe passed to this callback"
            )
            rank_zero_warn(
                f"RMQMCallback: the checkpoint did not store its probe ({record['bytes'] / MIB:.1f} MiB, over"
                f" checkpoint_probe_mib={self.checkpoint_probe_mib:g}), and the probe rebuilt now from {origin}"
                f" ({len(probe)} samples) differs from it (fingerprints {fingerprint(probe)[:12]} and"
                f" {record['fingerprint'][:12]}): the data changed, so the values logged after resuming are not"
                " comparable with the earlier ones."
            )

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._due(trainer):
            self._evaluate(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # (validation at the epoch's end has already run): the schedule follows the training epochs
        # (no validation, or an empty validation set), or a due validation had no batches after all
        schedule = self._schedule
        if schedule is None or self._evaluated_epoch == trainer.current_epoch:
            return
        epoch = trainer.current_epoch
        if (not schedule.at_validation and schedule.evaluates(epoch)) or (
            schedule.at_validation and schedule.validates(epoch) and self._due(trainer)
        ):
            self._evaluate(trainer, pl_module)

    def _due(self, trainer: Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == "validate":
            return True
        schedule = self._schedule
        every_n_epochs = schedule.every_n_epochs if schedule is not None else self.every_n_epochs
        return trainer.state.fn == "fit" and (trainer.current_epoch + 1) % every_n_epochs == 0

    def _probe_for(self, trainer: Trainer) -> Probe:
        if self._probe is None:
            raise RuntimeError("RMQMCallback evaluated before its probe was taken (on_train_start did not run).")
        if getattr(trainer, "fast_dev_run", False):
            labels = None if self._probe.labels is None else self._probe.labels[: self.batch_size]
            return Probe(self._probe.inputs[: self.batch_size], labels)
        return self._probe

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluated_epoch = trainer.current_epoch
        probe = self._probe_for(trainer)
        probe = Probe(trainer.precision_plugin.convert_input(probe.inputs), probe.labels)
        encoder = self._encoder(pl_module)
        tensorboards = tensorboard_loggers(trainer)
        draw = self.log_curves and bool(tensorboards) and self._can_draw()
        step = epoch_log_step(trainer)
        spectrum = None if self._spectrum is None else self._spectrum.to(pl_module.device)
        if spectrum is not None:
            spectrum.reset()  # nothing left over from an evaluation an error interrupted
        for name, alteration in self.alterations.items():
            clean = spectrum if name == next(iter(self.alterations)) else None
            values, curves = self._measure(trainer, pl_module, probe, encoder, name, alteration, draw, clean)
            self._log(pl_module, name, values)
            if curves is not None and trainer.is_global_zero:
                label = f"epoch {trainer.current_epoch}"
                figure, _ = plot_curves(curves, strengths=alteration.strengths(), label=label)
                for logger in tensorboards:
                    logger.experiment.add_figure(metric_key(self.prefix, name, CURVES_KEY), figure, global_step=step)
        if spectrum is not None:
            scores = spectrum.compute()  # collective under DDP: every process calls it
            spectrum.reset()
            for quantity, value in scores.items():
                self._log_value(pl_module, callback_key(self.prefix, quantity), value)
            self.last_spectral = {quantity: float(value) for quantity, value in scores.items()}
        if trainer.is_global_zero and "layout" not in self._said:
            self._said.add("layout")
            for logger in tensorboards:
                reference = self.convention == "reference"
                logger.experiment.add_custom_scalars(layout(self.prefix, self.alterations, self.spectral, reference))

    def _can_draw(self) -> bool:
        if matplotlib_available():
            return True
        if "matplotlib" not in self._said:
            self._said.add("matplotlib")
            rank_zero_warn(
                "RMQMCallback(log_curves=True) draws the per-level curves for TensorBoard with matplotlib, which is"
                " not installed: the scalars are logged, the figure is not. Install it with"
                " `pip install rmqm_callback[plot]` (or `pip install matplotlib`), or pass log_curves=False."
            )
        return False

    def _measure(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        probe: Probe,
        encoder: Encoder,
        name: str,
        alteration: Alteration,
        with_curves: bool,
        clean: SpectralScores | None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Score this process's shard, sync, and return the values to log (and curves) of every process."""
        metric = self._metrics[name].to(pl_module.device)
        metric.reset()
        start = time.perf_counter()
        skipped = measure(
            metric,
            pl_module,
            encoder,
            probe,
            alteration,
            precision=trainer.precision_plugin,
            device=pl_module.device,
            batch_size=self.batch_size,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            progress=self._progress_bar(trainer, name),
            skip_non_finite=True,
            clean=clean,
        )
        # every process takes the same branch: the count is summed over processes first
        skipped = int(trainer.strategy.reduce(torch.tensor(float(skipped), device=pl_module.device), reduce_op="sum"))
        curves = None
        if skipped:
            rank_zero_warn(
                f"RMQMCallback[{name}]: the model gave non-finite (NaN/inf) representations for {skipped} probes"
                " (have the weights diverged?); logging NaN for this evaluation."
            )
            results = None
        else:
            results = metric.compute()  # collective under DDP: every process calls it
            curves = metric.curves() if with_curves else None
        metric.reset()
        values = self._values(results, skipped, len(probe), pl_module.device)
        values[SECONDS_KEY] = values[NON_FINITE_KEY].new_tensor(time.perf_counter() - start)
        self.last_results[name] = {key: float(value) for key, value in (results or {}).items()} | {
            SECONDS_KEY: float(values[SECONDS_KEY]),
            "non_finite": float(skipped),
        }
        if results is None:
            self.last_results[name]["RMQM"] = math.nan
        self._warn_left_out(name, results)
        return values, curves

    def _values(
        self, results: dict[str, Tensor] | None, skipped: int, num_probes: int, device: torch.device
    ) -> dict[str, Tensor]:
        """The logged quantities of one alteration (NaN, on the module's device, where results are missing).

        NaN tensors live on the module's device: Lightning syncs logged tensors where they are
        (NCCL needs the GPU).
        """
        names = dict(_RESULT_QUANTITIES)
        if self.convention == "reference":
            names.update(_REFERENCE_RESULT_QUANTITIES)
        nan = torch.tensor(math.nan, dtype=torch.float64, device=device)
        values = {quantity: nan if results is None else results[key] for key, quantity in names.items()}
        for component, quantity in (("D_RC", D_RC_LEFT_OUT_KEY), ("P_RC", P_RC_LEFT_OUT_KEY)):
            values[quantity] = nan if results is None else results[f"{component}_left_out"] / results["num_probes"]
        values[NON_FINITE_KEY] = torch.tensor(skipped / num_probes, dtype=torch.float64, device=device)
        return values

    def _warn_left_out(self, name: str, results: dict[str, Tensor] | None) -> None:
        if results is None:
            return
        left_out = max(float(results["D_RC_left_out"]), float(results["P_RC_left_out"]))
        if left_out > 0:
            rank_zero_warn(
                f"RMQMCallback[{name}]: {left_out:.0f} of {float(results['num_probes']):.0f} probes were left out"
                " of a spike component (zero distances between levels): part of the representation has collapsed."
            )

    def _log_value(self, pl_module: LightningModule, key: str, value: Tensor) -> None:
        # every process holds the same synced value: "max" syncs it exactly and without a warning
        pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")

    def _log(self, pl_module: LightningModule, name: str, values: dict[str, Tensor]) -> None:
        for quantity, value in values.items():
            self._log_value(pl_module, metric_key(self.prefix, name, quantity), value)

    def _same_probe(self, saved: Probe, saved_size: int | None) -> bool:
        """Whether ``saved`` is the probe this callback was given (an int probe: asked for the same size)."""
        if self._probe is None:
            return self.probe_size is None or self.probe_size == (len(saved) if saved_size is None else saved_size)
        given = self._probe = materialize(self._probe)  # a Dataset or DataLoader is read now, not at train start
        return fingerprint(given) == fingerprint(saved)

    def _progress_bar(self, trainer: Trainer, name: str) -> ProgressHook | None:
        wanted = trainer.progress_bar_callback is not None if self.progress is None else self.progress
        return progress_bar(f"RMQM {name}") if wanted and trainer.is_global_zero else None

    @override
    def state_dict(self) -> dict[str, Any]:
        record = None
        if type(self._probe) is Probe:
            requested = self.probe_size
            budget = int(self.checkpoint_probe_mib * MIB)
            record = probe_record(self._probe, source=self._probe_source, requested=requested, budget_bytes=budget)
        return {
            "probe": record,
            "settings": self._settings(),
            "recorded": self._recorded(),
            "last_results": dict(self.last_results),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        record = record_from_state(state_dict)
        if record is not None:
            saved_probe = stored_probe(record)
            if saved_probe is None:  # over the budget: rebuilt from the data at train start, and verified
                self._resumed = record
                if self.probe_size is not None:
                    self._probe = None
            else:
                if not self._same_probe(saved_probe, record.get("requested")):
                    rank_zero_warn(
                        f"RMQMCallback: resuming with the checkpoint's probe ({len(saved_probe)} samples), not the"
                        f" probe passed to this callback, so that the values stay comparable across the run."
                    )
                self._probe = saved_probe
                self._probe_source = record.get("source", "given")
        self.last_results = dict(state_dict.get("last_results", {}))
        saved = state_dict.get("settings")
        if saved is not None and self._comparable(saved) != self._comparable(self._settings()):
            rank_zero_warn(
                f"RMQMCallback: the checkpoint was saved with settings {saved}, this callback has"
                f" {self._settings()}; the values logged after resuming are not comparable with the earlier ones."
            )
