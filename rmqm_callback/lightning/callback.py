"""``RMQMCallback``: RMQM of the model's representation at epoch ends, logged through Lightning."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from rmqm_callback.alterations import Alteration
from rmqm_callback.evaluation._guest_clock import GUEST_PASS_LIMIT_S, Forecast
from rmqm_callback.evaluation._stream import ProgressHook, check_set_up
from rmqm_callback.evaluation.encoder import EmbedRule, Encoder, check_embed_and_preprocess
from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.functional._checks import check_bool, check_convention, check_int
from rmqm_callback.functional.knn import knn_for_probe, knn_k
from rmqm_callback.keys import (
    CURVES_KEY,
    SPECTRAL_QUANTITIES,
    callback_key,
    metric_key,
)
from rmqm_callback.lightning._agreement import agreed
from rmqm_callback.lightning._callback_keys import CallbackKeys
from rmqm_callback.lightning._callback_state import CallbackState
from rmqm_callback.lightning._checks import check_distinct_keys, check_strategy, check_trainer, named_alterations
from rmqm_callback.lightning._cost_notice import CostNotice
from rmqm_callback.lightning._held_probe import HeldProbe
from rmqm_callback.lightning._loggers import Charts, add_figure, epoch_log_step, figure_loggers, lay_out
from rmqm_callback.lightning._namespaces import LightningModule, Trainer
from rmqm_callback.lightning._progress import progress_bar
from rmqm_callback.lightning._schedule import EvaluationSchedule, check_monitors
from rmqm_callback.lightning._synced import measure_in_run
from rmqm_callback.metrics._clean_level import CleanLevelScores
from rmqm_callback.metrics._plotting import matplotlib_available, plot_curves
from rmqm_callback.metrics.rmqm import RMQM


class RMQMCallback(CallbackKeys, CallbackState):  # type: ignore[misc]  # both namespaces' Callback, as LightningCallback
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
    probe and, for a probe with class labels, its leave-one-out k-NN accuracy
    ``{prefix}/knn_accuracy`` (see :mod:`rmqm_callback.keys`). With matplotlib, a
    ``TensorBoardLogger``, ``WandbLogger`` or ``MLFlowLogger`` also gets the per-level curves as a
    figure (see ``docs/loggers.md``).

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
        log_curves: add the curves figure to TensorBoard, W&B and MLflow loggers (needs matplotlib: the ``plot`` extra).
        progress: show a progress bar on process 0; ``None`` follows the trainer's progress bar.
        spectral: log RankMe and alpha-ReQ of the clean probe (from the level-0 representations
            of the first alteration: no extra forward pass).
        knn: log the leave-one-out k-NN accuracy of the clean probe, from the same representations
            and the probe's labels (:func:`~rmqm_callback.functional.knn_accuracy`): ``True`` where
            the probe has class labels (a 1-D integer or bool tensor), with k =
            :data:`~rmqm_callback.functional.knn.DEFAULT_KNN_K`; ``k`` (an int) to require it with
            ``k`` neighbours; ``False`` for none.
        checkpoint_probe_mib: the most MiB of probe stored in each checkpoint. A larger probe is
            stored as what rebuilds and verifies it (an int probe: its dataset indices; every
            probe: a fingerprint), and rebuilt from the data on resume.

    Raises:
        TypeError / ValueError: a bad argument; the message names it. At the start of ``fit``,
            before training: a probe the model fails on, outside an alteration's input contract,
            or an alteration whose output is not like its input (one guest trajectory of two
            probes through every alteration), a model output the ``embed`` rule cannot make
            ``(batch, d)``, a sharded strategy, ``Trainer(barebones=True)``, another
            ``RMQMCallback`` logging the same keys, a monitor that would miss RMQM's epochs or
            never check, watches a key this callback does not log (``knn_accuracy`` of a probe without
            labels), ``knn=k`` for a probe without class labels, a probe of ``k`` or fewer samples, a batch
            too small for an alteration (PGD's default loss needs 2 probes), a model on the meta device, or
            a guest pass forecast past ``guest_pass_limit_s``.

    Attributes:
        guest_pass_limit_s: the most seconds the fit-start guest pass of two probes may take (60);
            it is forecast while it runs, and a longer one is refused before it spends the time.
            Its time, scaled to the probe, is the forecast of one evaluation logged at fit start.

    Examples:
        ```python
        from pytorch_lightning import Trainer
        from pytorch_lightning.callbacks import ModelCheckpoint
        from rmqm_callback import RMQMCallback

        trainer = Trainer(callbacks=[
            RMQMCallback(probe=512),
            ModelCheckpoint(monitor="rmqm/noise/RMQM", mode="max", save_top_k=-1),
        ])
        ```

    """

    guest_pass_limit_s: float = GUEST_PASS_LIMIT_S

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
        knn: bool | int = True,
    ) -> None:
        self._held = HeldProbe(probe, checkpoint_probe_mib)
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
        knn_k(knn)
        self.knn = knn
        self.checkpoint_probe_mib = self._held.budget_mib
        self.last_results: dict[str, dict[str, float]] = {}
        self.last_spectral: dict[str, float] = {}
        self._metrics = {name: RMQM(convention=convention, normalize=normalize) for name in self.alterations}
        self._knn: int | None = None  # the k of the k-NN accuracy of the probe taken, None for none
        self._evaluated_epoch: int | None = None
        self._schedule: EvaluationSchedule | None = None  # when the running fit evaluates (from on_train_start)
        self._precision: str | None = None
        self._said: set[str] = set()  # one-time messages already given
        self._cost = CostNotice()  # what the first evaluation of a fit costs the training

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
        self._said.discard("layout")  # each run's loggers get the layout
        self._schedule = None
        if stage == "fit":
            self._evaluated_epoch = None
            self._held.start_fit()
            self._cost.start_fit()

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after a checkpoint restore (which brings its own probe) and after the training data loaded
        schedule = self._schedule = EvaluationSchedule.of(trainer, self.every_n_epochs)
        self._held.take(trainer, schedule.source)  # the monitors' check needs to know whether it has labels
        check_monitors(trainer, schedule, self.logged_keys, self.prefix)
        self._precision = str(trainer.precision)
        rank_zero_info(self._prepare_probe(trainer, pl_module, schedule.source).describe("RMQMCallback"))

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._cost.epoch_started()

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._cost.validation_ended()

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "validate":
            self._cost.validation_started()
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

    def _prepare_probe(self, trainer: Trainer, pl_module: LightningModule, source: str) -> Forecast:
        """Take (or read) the probe, and send its first two probes through a whole evaluation: its forecast."""
        probe = self._held.take(trainer, source)
        # every process refuses when one does (the guest pass's clock is each process's own)
        return agreed(trainer, "RMQMCallback", lambda: self._checked_set_up(trainer, pl_module, probe))

    def _checked_set_up(self, trainer: Trainer, pl_module: LightningModule, probe: Probe) -> Forecast:
        self._knn = knn_for_probe(self.knn, probe.labels, len(self._probe_for(trainer)), "RMQMCallback")
        return check_set_up(
            "RMQMCallback",
            pl_module,
            self._encoder(pl_module),
            probe,
            self.alterations,
            precision=trainer.precision_plugin,
            device=pl_module.device,
            batch_size=self.batch_size,
            convention=self.convention,
            normalize=self.normalize,
            num_probes=len(self._probe_for(trainer)),
            world_size=trainer.world_size,
            time_limit_s=self.guest_pass_limit_s,
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

    @property
    def probe_size(self) -> int | None:
        """The ``n`` of an int probe (``probe=n``), else ``None``."""
        return self._held.size

    @property
    def _probe(self) -> Probe | None:
        """The probe in memory (``None`` for an int probe before it is taken)."""
        return self._held.probe

    def _probe_for(self, trainer: Trainer) -> Probe:
        probe = self._held.probe
        if probe is None:
            raise RuntimeError("RMQMCallback evaluated before its probe was taken (on_train_start did not run).")
        if getattr(trainer, "fast_dev_run", False):
            labels = None if probe.labels is None else probe.labels[: self.batch_size]
            return Probe(probe.inputs[: self.batch_size], labels)
        return probe

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        started = time.perf_counter()
        self._evaluated_epoch = trainer.current_epoch
        probe = self._probe_for(trainer)
        probe = Probe(trainer.precision_plugin.convert_input(probe.inputs), probe.labels)
        encoder = self._encoder(pl_module)
        draw = self.log_curves and bool(figure_loggers(trainer)) and self._can_draw()
        step = epoch_log_step(trainer)
        if trainer.is_global_zero and "layout" not in self._said:  # before the first values reach the loggers
            self._said.add("layout")
            reference = self.convention == "reference"
            charts = Charts(self.prefix, tuple(self.alterations), self.spectral, reference, frozenset(self.logged_keys))
            lay_out(trainer, charts)
        scores = None  # of the first alteration's clean level: one kept state for the spectral scores and k-NN
        if self.spectral or self._knn is not None:
            scores = CleanLevelScores(spectral=self.spectral, knn=self._knn).to(pl_module.device)
        for name, alteration in self.alterations.items():
            clean = scores if name == next(iter(self.alterations)) else None
            values, curves, self.last_results[name] = measure_in_run(
                trainer,
                pl_module,
                self._metrics[name],
                probe,
                encoder,
                name,
                alteration,
                batch_size=self.batch_size,
                reference=self.convention == "reference",
                with_curves=draw,
                clean=clean,
                progress=self._progress_bar(trainer, name),
            )
            self._log(pl_module, name, values)
            if curves is not None and trainer.is_global_zero:
                label = f"epoch {trainer.current_epoch}"
                figure, _ = plot_curves(curves, strengths=alteration.strengths(), label=label)
                key = metric_key(self.prefix, name, CURVES_KEY)
                add_figure(trainer, key, figure, epoch=trainer.current_epoch, step=step)
        if scores is not None:
            clean_values = scores.compute()  # collective under DDP: every process calls it
            scores.reset()
            for quantity, value in clean_values.items():
                self._log_value(pl_module, callback_key(self.prefix, quantity), value)
            self.last_spectral = {q: float(v) for q, v in clean_values.items() if q in SPECTRAL_QUANTITIES}
        if trainer.state.fn == "fit" and not getattr(trainer, "fast_dev_run", False):
            levels = sum(alteration.levels for alteration in self.alterations.values())
            epoch, every = trainer.current_epoch, self.every_n_epochs
            self._cost.say(started, epoch=epoch, probes=len(probe), levels=levels, every=every)

    def _can_draw(self) -> bool:
        if matplotlib_available():
            return True
        if "matplotlib" not in self._said:
            self._said.add("matplotlib")
            rank_zero_warn(
                "RMQMCallback(log_curves=True) draws the per-level curves for your logger with matplotlib, which is"
                " not installed: the scalars are logged, the figure is not. Install it with"
                " `pip install rmqm_callback[plot]` (or `pip install matplotlib`), or pass log_curves=False."
            )
        return False

    def _log_value(self, pl_module: LightningModule, key: str, value: Tensor) -> None:
        # every process holds the same synced value: "max" syncs it exactly and without a warning
        pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")

    def _log(self, pl_module: LightningModule, name: str, values: dict[str, Tensor]) -> None:
        for quantity, value in values.items():
            self._log_value(pl_module, metric_key(self.prefix, name, quantity), value)

    def _progress_bar(self, trainer: Trainer, name: str) -> ProgressHook | None:
        wanted = trainer.progress_bar_callback is not None if self.progress is None else self.progress
        return progress_bar(f"RMQM {name}") if wanted and trainer.is_global_zero else None
