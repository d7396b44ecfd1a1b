"""The state that the scores of whole probes share: its representations, probe indices and labels, gathered.

RankMe, alpha-ReQ and the k-NN accuracy do not add up over blocks: each needs the whole ``(N, d)``
matrix. :class:`ProbeRepresentations` keeps it (float64), with the probe index of every row and,
where given, its class label; ``compute`` syncs the state across processes and
:meth:`~ProbeRepresentations._gathered` puts the rows back in probe order, so a score computed from
it is the single-process value whatever the blocks, their order and the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from rmqm_callback.functional.knn import check_class_labels
from rmqm_callback.metrics._state_dtype import KeepsStateDtype

#: The empty state a process that saw no probe sends, per state: its dtype.
_STATE_DTYPES = {"rows": torch.float64, "indices": torch.float64, "labels": torch.int64}


class ProbeRepresentations(KeepsStateDtype):
    """Representations of probes, kept (float64) with their probe indices and optional class labels.

    Subclasses call :meth:`_add` from their ``update`` and read :meth:`_gathered` in ``compute``.

    Examples:
        >>> import torch
        >>> class Labels(ProbeRepresentations):
        ...     def update(self, representations, indices, labels):
        ...         self._add(representations, indices, labels)
        ...     def compute(self):
        ...         return self._gathered()[1]
        >>> state = Labels()
        >>> state.update(torch.ones(2, 3), torch.tensor([1, 0]), torch.tensor([5, 7]))
        >>> state.compute().tolist()  # in probe order
        [7, 5]

    """

    is_differentiable: bool = False
    higher_is_better: bool | None = None
    full_state_update: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # flat rows, so that a process without a block (an empty tensor) gathers with the others
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("width", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")

    def _state(self, name: str) -> Tensor:
        value = getattr(self, name)
        if isinstance(value, list):
            dtype = _STATE_DTYPES.get(name, torch.float64)
            return dim_zero_cat(value) if value else torch.zeros(0, dtype=dtype, device=self.device)
        return cast(Tensor, value)

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
        """Sync like torchmetrics, a process that saw no probe sending empty tensors of the states' dtypes."""
        for name, dtype in _STATE_DTYPES.items():
            if not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=dtype, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)

    def _add(self, representations: Tensor, indices: Tensor | None, labels: Tensor | None) -> None:
        """Add ``(n, d)`` representations of probes ``indices`` (default: the next ``n``), with class ``labels``."""
        if not isinstance(representations, Tensor) or not representations.is_floating_point():
            raise TypeError(f"`representations` must be a floating tensor, got {type(representations).__name__}.")
        if representations.ndim != 2:
            raise ValueError(f"`representations` must be (n, d), got shape {tuple(representations.shape)}.")
        count, width = representations.shape
        known = int(self._state("width"))  # 0 before the first update
        if known not in (0, width):
            raise ValueError(f"`representations` have width {width}, earlier updates had {known}.")
        if indices is None:
            start = sum(part.numel() for part in cast(list, self.indices))
            indices = torch.arange(start, start + count)
        if indices.shape != (count,):
            raise ValueError(f"`indices` must have shape ({count},), got {tuple(indices.shape)}.")
        device = self._state("width").device
        if labels is not None:
            cast(list, self.labels).append(check_class_labels(labels, count, type(self).__name__).to(device))
        cast(list, self.rows).append(representations.detach().to(device=device, dtype=torch.float64).flatten())
        cast(list, self.indices).append(indices.to(device=device, dtype=torch.float64))
        self.width = torch.tensor(float(width), dtype=torch.float64, device=device)

    def _gathered(self) -> tuple[Tensor, Tensor | None]:
        """The ``(N, d)`` representations in probe order, and their labels (``None`` if none were given).

        Raises:
            ValueError: labels were given with some updates and not with others, or the states were emptied
                behind the metric's back (torchmetrics' ``Running`` wrapper).

        """
        if self._update_count > 0 and isinstance(self.indices, list) and not self.indices:
            # every update appends a block (an empty one too): someone emptied the lists behind our back
            raise ValueError(
                f"{type(self).__name__} was updated but holds no representations: its states are lists, which"
                " Metric.reset() empties in place, and torchmetrics' Running wrapper keeps them by reference, so its"
                f" window is emptied too. Running cannot wrap {type(self).__name__}; compute it over the probe."
            )
        width = int(self._state("width"))
        rows = self._state("rows")
        matrix = rows.view(-1, width) if width else rows.view(0, 0)
        order = torch.argsort(self._state("indices"), stable=True)
        labels = self._state("labels")
        if labels.numel() == 0:
            return matrix[order], None
        if labels.numel() != matrix.shape[0]:
            raise ValueError(
                f"{type(self).__name__} holds {matrix.shape[0]} representations but {labels.numel()} labels: pass"
                " labels with every update or with none."
            )
        return matrix[order], labels[order]
