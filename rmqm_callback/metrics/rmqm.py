"""``RMQM``: the Representation Manifold Quality Metric as a ``torchmetrics.Metric``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from rmqm_callback.functional._checks import check_bool, check_convention
from rmqm_callback.functional._moments import merge_moments
from rmqm_callback.functional.rmqm import (
    LEVEL_STATES,
    SCALAR_STATES,
    _distance_statistics,
    _rmqm_compute,
    _rmqm_curves,
    _rmqm_update,
)
from rmqm_callback.metrics._state_dtype import KeepsStateDtype


def _check_distances(distances: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(distances, (tuple, list)) or len(distances) != 2:
        raise TypeError(f"`distances` must be a (do, dp) pair of tensors, got {type(distances).__name__}.")
    do, dp = distances
    for name, series in (("do", do), ("dp", dp)):
        if not isinstance(series, Tensor) or not series.is_floating_point() or series.ndim != 2:
            raise TypeError(f"`distances` {name} must be a floating (n, J) tensor, got {series!r:.80}.")
        if not bool(torch.isfinite(series).all()) or bool((series < 0).any()):
            raise ValueError(f"`distances` {name} must be finite and non-negative.")
    if do.shape != dp.shape or do.shape[1] < 2:
        raise ValueError(
            f"`distances` do and dp must have the same shape (n, J) with J >= 2, got {tuple(do.shape)}"
            f" and {tuple(dp.shape)}."
        )
    return do, dp


class RMQM(KeepsStateDtype):
    r"""Representation Manifold Quality Metric, accumulated over chunks of trajectories.

    ``update`` takes chunks of whole trajectories ``(n, L, d)`` (level 0 unaltered) and merges
    their per-probe statistics into running moments ``(count, sum, M2)`` (``dist_reduce_fx`` is
    Chan et al.'s pairwise merge, so standard errors stay exact even when probes agree to many
    digits): memory does not grow with the number of probes, and the result is the same for any
    chunking, probe order or number of processes. ``compute`` returns the same dictionary as
    :func:`rmqm_callback.functional.rmqm`; :meth:`curves` returns the per-level mean curves
    (paper figures 2, 5, 6, 7) and :meth:`plot` draws them.

    .. math::

        \mathrm{RMQM} = \ln\left(1 + D + D_{RC}^{-1} + P_{RC}^{-1}\right)

    States are kept in float64, also when the module holding the metric is cast
    (``module.to(torch.bfloat16)``, Lightning's ``precision="bf16-true"``); only ``set_dtype``
    changes that. Inputs are detached: the metric is not differentiable and keeps no graph.

    Args:
        convention: ``"paper"`` (eqs. 1-4 of the paper, default) or ``"reference"`` (the
            authors' released pipeline); see :func:`rmqm_callback.functional.rmqm`.
        normalize: L2-normalise each representation before measuring distances.
        kwargs: passed to :class:`torchmetrics.Metric` (``dist_sync_fn``, ``process_group``...).

    Raises:
        ValueError: unknown ``convention``.
        TypeError: ``normalize`` is not a bool.

    Examples:
        >>> import torch
        >>> from rmqm_callback import RMQM
        >>> metric = RMQM()
        >>> trajectories = torch.randn(10, 5, 8, generator=torch.Generator().manual_seed(0))
        >>> metric.update(trajectories[:4])
        >>> metric.update(trajectories[4:])
        >>> result = metric.compute()
        >>> sorted(k for k in result if not k.endswith(("_se", "_left_out")))
        ['D', 'D_RC', 'P_RC', 'RMQM', 'num_probes']
        >>> int(result["num_probes"])
        10

    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    # the states (see add_state below), typed for the readers of this class
    d_moments: Tensor
    dprev_moments: Tensor
    drc_moments: Tensor
    prc_moments: Tensor
    do_level_moments: Tensor
    dp_level_moments: Tensor
    drc_level_moments: Tensor
    prc_level_moments: Tensor

    def __init__(self, convention: str = "paper", normalize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.convention = check_convention(convention)
        self.normalize = check_bool("normalize", normalize)
        for name in SCALAR_STATES:
            self.add_state(name, default=torch.zeros(3, dtype=torch.float64), dist_reduce_fx=merge_moments)
        for name in LEVEL_STATES:
            # shape (3, J): J is known at the first update; a process that never updated syncs zeros
            self.add_state(name, default=torch.zeros(3, 0, dtype=torch.float64), dist_reduce_fx=merge_moments)

    def update(self, embeddings: Tensor | None = None, *, distances: tuple[Tensor, Tensor] | None = None) -> None:
        """Add a chunk of trajectories.

        Args:
            embeddings: ``(n, L, d)`` representations, level 0 unaltered; ``n`` may be 0.
            distances: instead of ``embeddings``, the pair ``(do, dp)`` of ``(n, J)`` distance
                series to the original and to the previous level (already normalised), as a
                streaming scorer computes them level by level.

        """
        if (embeddings is None) == (distances is None):
            raise ValueError("Pass exactly one of `embeddings` or `distances` to RMQM.update.")
        dtype = self.d_moments.dtype
        if embeddings is not None:
            if isinstance(embeddings, Tensor):
                embeddings = embeddings.detach()
            stats = _rmqm_update(embeddings, self.convention, self.normalize, dtype=dtype)
        else:
            do, dp = _check_distances(distances)
            stats = _distance_statistics(do.detach(), dp.detach(), self.convention, dtype=dtype)
        self._add_statistics(stats)

    def forward(self, embeddings: Tensor | None = None, *, distances: tuple[Tensor, Tensor] | None = None) -> Any:
        """Add a chunk like :meth:`update` and return the result of that chunk alone."""
        # torchmetrics' forward resets the state before its update: check L while the state is known
        series = distances[0] if isinstance(distances, (tuple, list)) and len(distances) > 0 else None
        if isinstance(embeddings, Tensor) and embeddings.ndim == 3:
            self._check_num_steps(embeddings.shape[1] - 1)
        elif isinstance(series, Tensor) and series.ndim == 2:
            self._check_num_steps(series.shape[1])
        return super().forward(embeddings, distances=distances)

    def _check_num_steps(self, num_steps: int) -> None:
        current = self.do_level_moments.shape[1]
        if current not in (0, num_steps):
            raise ValueError(
                f"RMQM got trajectories of L={num_steps + 1} levels, but earlier updates had"
                f" L={current + 1}; call reset() between evaluations with different alterations."
            )

    def _add_statistics(self, stats: dict[str, Tensor]) -> None:
        current = self.do_level_moments.shape[1]
        self._check_num_steps(stats["do_level_moments"].shape[1])
        for name in SCALAR_STATES + LEVEL_STATES:
            value = stats[name].to(self.d_moments.device)
            if name in LEVEL_STATES and current == 0:
                setattr(self, name, value)
            else:
                setattr(self, name, merge_moments(torch.stack([getattr(self, name), value])))

    def _reduce_states(self, incoming_state: dict[str, Any]) -> None:
        """Merge ``incoming_state`` (in ``forward`` and ``merge_state``) into this metric's state.

        Per-level states start empty (``J`` is known at the first update), so an empty side takes
        the other side's shape instead of failing to broadcast.
        """
        incoming_steps = incoming_state["do_level_moments"].shape[1]
        if incoming_steps > 0:
            self._check_num_steps(incoming_steps)
        num_steps = self.do_level_moments.shape[1]
        incoming_state = dict(incoming_state)
        for name in LEVEL_STATES:
            if incoming_steps == 0:
                incoming_state[name] = torch.zeros_like(getattr(self, name))
            elif num_steps == 0:
                setattr(self, name, torch.zeros_like(incoming_state[name]))
        super()._reduce_states(incoming_state)

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
        """Sync like torchmetrics, letting a process that saw no trajectory contribute zeros per level."""

        def gather_levels(tensor: Tensor, group: Any = None) -> list[Tensor]:
            parts = dist_sync_fn(tensor, group=group)
            if tensor.ndim != 2:  # (3,) moments
                return parts
            sizes = {part.shape[1] for part in parts} - {0}
            if len(sizes) > 1:
                raise ValueError(
                    f"RMQM processes hold trajectories of different numbers of levels ({sorted(sizes)} steps):"
                    " every process must use the same alteration."
                )
            size = sizes.pop() if sizes else 0
            return [part if part.shape[1] == size else part.new_zeros(3, size) for part in parts]

        super()._sync_dist(gather_levels, process_group)

    def _statistics(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in SCALAR_STATES + LEVEL_STATES}

    def compute(self) -> dict[str, Tensor]:
        """Return ``RMQM``, ``D``, ``D_RC``, ``P_RC``, their standard errors and probe counts."""
        return _rmqm_compute(self._statistics(), self.convention)

    def curves(self) -> dict[str, Tensor]:
        """Per-level curves for ``j = 1..J``, synced across processes like :meth:`compute`.

        Returns:
            ``level`` and, each with a ``_se`` twin, ``distance_to_original``,
            ``distance_to_previous``, ``relative_change_to_original`` and
            ``relative_change_to_previous`` (the spike terms of the chosen convention;
            NaN at a level where no term exists).

        """
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=self._should_unsync
        ):
            if self.do_level_moments.shape[1] == 0:
                raise ValueError("RMQM.curves() needs at least one update with trajectories.")
            return {key: value.clone() for key, value in _rmqm_curves(self._statistics()).items()}

    def plot(self, ax: Any = None, *, strengths: Tensor | None = None, label: str | None = None) -> Any:
        """Draw the per-level curves with error bands (needs matplotlib).

        Args:
            ax: a sequence of 3 matplotlib axes to draw on; a new figure when ``None``.
            strengths: alteration strength per level ``j = 0..J`` for the x axis (for example
                ``GaussianNoise().strengths()``); the level index when ``None``.
            label: legend label of the curves.

        Returns:
            ``(figure, axes)``.

        """
        from rmqm_callback.metrics._plotting import plot_curves

        return plot_curves(self.curves(), axes=ax, strengths=strengths, label=label)
