"""``ScalarView``: one quantity of a dict-valued metric as a scalar metric, for torchmetrics' wrappers.

``RMQM.compute()`` and ``SpectralScores.compute()`` return dictionaries. ``MetricCollection``
and ``Running`` take them as they are; ``MetricTracker``, ``BootStrapper`` and ``MinMaxMetric``
need one scalar per ``compute``, which ``ScalarView(metric, "RMQM")`` gives.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.wrappers.abstract import WrapperMetric

#: Which way is better, for the quantities that have one: RMQM = ln(1 + D + 1/D_RC + 1/P_RC) grows
#: with D and falls with D_RC and P_RC; a higher RankMe is a higher effective rank.
HIGHER_IS_BETTER = {"RMQM": True, "D": True, "D_RC": False, "P_RC": False, "RankMe": True}


class ScalarView(WrapperMetric):
    r"""One quantity of a dict-valued metric (``RMQM``, ``SpectralScores``) as a scalar ``Metric``.

    ``update``, ``reset``, syncing and ``forward`` are the wrapped metric's; ``compute`` returns
    ``metric.compute()[quantity]``. ``higher_is_better`` is the quantity's (``True`` for RMQM, D
    and RankMe, ``False`` for D_RC and P_RC, ``None`` for the others), so that ``MetricTracker``
    knows which way is best.

    Args:
        metric: a metric whose ``compute`` returns a dict of tensors.
        quantity: the key of the one to return (for ``RMQM`` and ``SpectralScores`` checked now,
            against their ``quantities``).
        kwargs: passed to :class:`torchmetrics.Metric`.

    Raises:
        TypeError: ``metric`` is not a ``torchmetrics.Metric``.
        ValueError: ``quantity`` is not one that ``metric`` computes.

    Examples:
        >>> import torch
        >>> from torchmetrics.wrappers import MetricTracker
        >>> from rmqm_callback import RMQM
        >>> from rmqm_callback.metrics import ScalarView
        >>> tracker = MetricTracker(ScalarView(RMQM(), "RMQM"))  # maximize: RMQM's higher_is_better
        >>> generator = torch.Generator().manual_seed(0)
        >>> for epoch in range(3):
        ...     tracker.increment()
        ...     tracker.update(torch.randn(16, 5, 8, generator=generator))  # (probes, levels, features)
        >>> best, epoch = tracker.best_metric(return_step=True)
        >>> best == float(tracker.compute_all().max()), tracker.maximize
        (True, True)

    """

    is_differentiable: bool = False
    full_state_update: bool = False

    def __init__(self, metric: Metric, quantity: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(metric, Metric):
            raise TypeError(f"`metric` must be a torchmetrics.Metric, got {type(metric).__name__}.")
        known = getattr(metric, "quantities", None)
        if not isinstance(quantity, str) or (known is not None and quantity not in known):
            choices = f"; {type(metric).__name__} computes {', '.join(known)}" if known is not None else ""
            raise ValueError(
                f"`quantity` must be a key of {type(metric).__name__}.compute(), got {quantity!r}{choices}."
            )
        self.metric = metric
        self.quantity = quantity

    @property
    def higher_is_better(self) -> bool | None:  # type: ignore[override]  # the quantity's, not the class's
        """``True`` for RMQM, D and RankMe, ``False`` for D_RC and P_RC, ``None`` for the others."""
        return HIGHER_IS_BETTER.get(self.quantity)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """The wrapped metric's ``update``."""
        self.metric.update(*args, **kwargs)

    def compute(self) -> Tensor:
        """The wrapped metric's ``compute()[quantity]``."""
        return self._pick(self.metric.compute())

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The wrapped metric's ``forward`` (accumulates, returns the batch's value), of the one quantity."""
        return self._pick(self.metric(*args, **kwargs))

    def reset(self) -> None:
        """Reset the wrapped metric."""
        super().reset()
        self.metric.reset()

    def _pick(self, result: Any) -> Tensor:
        if not isinstance(result, dict) or self.quantity not in result:
            keys = sorted(result) if isinstance(result, dict) else type(result).__name__
            raise ValueError(f"ScalarView: {type(self.metric).__name__} computed {keys}, not {self.quantity!r}.")
        return result[self.quantity]
