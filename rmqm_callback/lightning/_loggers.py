"""What each kind of logger gets beyond the scalars: the curves figure of every evaluation, and a chart layout.

The scalars reach every logger through ``pl_module.log``. A logger that takes images also gets
the per-level curves figure, and its charts are laid out once per run; this module is the one
place that decides how:

- ``TensorBoardLogger``: the figure through ``add_figure`` at the step of the epoch's scalars; a
  Custom Scalars layout, RMQM and the collapse signals first.
- ``WandbLogger``: the figure as a ``wandb.Image`` under ``{prefix}/{name}/curves``, in a history row
  with the ``epoch``; ``define_metric`` plots every key of the callback against ``epoch``.
- ``MLFlowLogger``: the figure as an artifact ``{prefix}/{name}/curves/epoch_0007.png``; no layout
  (MLflow has none).

Any other logger (``CSVLogger``, your own) gets the scalars only, and no warning. Loggers of
either Lightning namespace and their subclasses are recognised
(:mod:`rmqm_callback.lightning._namespaces`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rmqm_callback.keys import CURVES_KEY, KNN_ACCURACY_KEY, callback_key, metric_key
from rmqm_callback.lightning._namespaces import Trainer, is_instance
from rmqm_callback.lightning._tensorboard import layout


@dataclass(frozen=True)
class Charts:
    """What one callback logs, for a logger's layout.

    Example:
        >>> Charts("rmqm", ("noise",), spectral=True, reference=False, scalar_keys=frozenset()).figure_keys
        ('rmqm/noise/curves',)

    """

    prefix: str
    names: tuple[str, ...]
    spectral: bool
    reference: bool
    #: Every scalar key the callback logs (``RMQMCallback.logged_keys``).
    scalar_keys: frozenset[str]

    @property
    def figure_keys(self) -> tuple[str, ...]:
        """The key of each alteration's curves figure."""
        return tuple(metric_key(self.prefix, name, CURVES_KEY) for name in self.names)


#: ``(logger, key, figure, epoch, step)``: hand one figure to a logger.
FigureWriter = Callable[[Any, str, Any, int, int], None]


class _Kind(NamedTuple):
    add_figure: FigureWriter
    lay_out: Callable[[Any, Charts], None]


def epoch_log_step(trainer: Trainer) -> int:
    """The step at which Lightning logs this epoch's epoch-end metrics (the x of their TensorBoard points)."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


def pixels(figure: Any) -> np.ndarray:
    """The figure drawn as an ``(height, width, 3)`` ``uint8`` RGB array (matplotlib's Agg backend, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _tensorboard_figure(logger: Any, key: str, figure: Any, epoch: int, step: int) -> None:
    logger.experiment.add_figure(key, figure, global_step=step, close=False)


def _tensorboard_layout(logger: Any, charts: Charts) -> None:
    knn = callback_key(charts.prefix, KNN_ACCURACY_KEY) in charts.scalar_keys  # a probe with class labels
    logger.experiment.add_custom_scalars(layout(charts.prefix, charts.names, charts.spectral, charts.reference, knn))


def _wandb_key(logger: Any, key: str) -> str:
    """``key`` as ``WandbLogger.log_metrics`` writes it: behind the logger's ``prefix``, if it has one."""
    prefix = getattr(logger, "_prefix", "")
    return f"{prefix}{logger.LOGGER_JOIN_CHAR}{key}" if prefix else key


def _wandb_figure(logger: Any, key: str, figure: Any, epoch: int, step: int) -> None:
    import wandb

    # its own history row, with the epoch and Lightning's step of the epoch's scalars
    logger.log_metrics({key: wandb.Image(pixels(figure)), "epoch": epoch}, step=step)


def _wandb_layout(logger: Any, charts: Charts) -> None:
    # WandbLogger plots every key against trainer/global_step through the glob "*"; a metric defined
    # by its exact name takes precedence over any glob (a name ending in "*" would be read as a glob)
    epoch = _wandb_key(logger, "epoch")
    for key in sorted(charts.scalar_keys.union(charts.figure_keys)):
        if not key.endswith("*"):
            logger.experiment.define_metric(_wandb_key(logger, key), step_metric=epoch)


def _mlflow_figure(logger: Any, key: str, figure: Any, epoch: int, step: int) -> None:
    logger.experiment.log_figure(logger.run_id, figure, f"{key}/epoch_{epoch:04d}.png")


def _no_layout(logger: Any, charts: Charts) -> None:
    return None


#: The loggers that take images, by class name (in ``{namespace}.loggers``).
_KINDS = {
    "TensorBoardLogger": _Kind(_tensorboard_figure, _tensorboard_layout),
    "WandbLogger": _Kind(_wandb_figure, _wandb_layout),
    "MLFlowLogger": _Kind(_mlflow_figure, _no_layout),
}


def _kind(logger: Any) -> _Kind | None:
    return next((kind for name, kind in _KINDS.items() if is_instance(logger, "loggers", name)), None)


def figure_loggers(trainer: Trainer) -> list[Any]:
    """The trainer's loggers that take the curves figure (TensorBoard, W&B, MLflow; of either namespace)."""
    return [logger for logger in trainer.loggers if _kind(logger) is not None]


def add_figure(trainer: Trainer, key: str, figure: Any, *, epoch: int, step: int) -> None:
    """Hand ``figure`` to every logger of the trainer that takes images (call it on process 0)."""
    for logger in trainer.loggers:
        kind = _kind(logger)
        if kind is not None:
            kind.add_figure(logger, key, figure, epoch, step)


def lay_out(trainer: Trainer, charts: Charts) -> None:
    """Lay out the callback's charts in every logger that has a layout (call it on process 0, before logging)."""
    for logger in trainer.loggers:
        kind = _kind(logger)
        if kind is not None:
            kind.lay_out(logger, charts)
