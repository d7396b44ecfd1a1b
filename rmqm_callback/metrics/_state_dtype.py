"""A ``torchmetrics.Metric`` whose states keep their dtype when the module holding it is cast.

torchmetrics already ignores ``.half()``, ``.float()`` and ``.double()``, but ``module.to(dtype)``
casts metric states like parameters. Lightning's true half precision (``precision="bf16-true"``
or ``"16-true"``) does exactly that to the ``LightningModule``, so float64 running moments held as
a module attribute would become bfloat16: counts past 256 stop adding up and sums lose their
digits. :class:`KeepsStateDtype` moves states to the new device and leaves their dtype alone;
:meth:`torchmetrics.Metric.set_dtype` still changes it on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric


class KeepsStateDtype(Metric):
    """A ``Metric`` whose states follow the module's device but not its dtype (unless ``set_dtype``).

    Examples:
        >>> import torch
        >>> from rmqm_callback import RMQM
        >>> holder = torch.nn.Module()
        >>> holder.metric = RMQM()
        >>> holder.metric.d_moments.dtype, holder.to(torch.bfloat16).metric.d_moments.dtype
        (torch.float64, torch.float64)

    """

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> nn.Module:
        if self._dtype_convert:  # set_dtype: the one way to change the states' dtype
            return super()._apply(fn, exclude_state)

        def move_only(tensor: Tensor) -> Tensor:
            # where ``fn`` would send a tensor of this dtype, without casting it
            device = fn(torch.empty(0, dtype=tensor.dtype, device=tensor.device)).device
            return tensor.to(device)

        return super()._apply(move_only, exclude_state)
