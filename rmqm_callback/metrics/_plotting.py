"""Draw RMQM's per-level curves with standard-error bands (paper figures 2, 5, 6 and 7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

_PANELS = (
    ("distance_to_original", "distance to original"),
    ("distance_to_previous", "distance to previous level"),
    ("relative_change_to_original", "relative change (to original)"),
)


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_curves(
    curves: dict[str, Tensor],
    axes: Sequence[Any] | None = None,
    strengths: Tensor | None = None,
    label: str | None = None,
) -> tuple[Any, Sequence[Any]]:
    """Plot mean curves with +-1 SE bands on three axes; returns ``(figure, axes)``.

    Raises:
        ModuleNotFoundError: matplotlib is not installed.
        ValueError: ``axes`` does not hold 3 axes, or ``strengths`` has the wrong length.

    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ModuleNotFoundError("Plotting RMQM curves needs matplotlib: pip install matplotlib") from error
    num_steps = curves["level"].shape[0]
    if strengths is None:
        x = curves["level"].cpu().numpy()
        x_label = "level"
    else:
        if strengths.shape[0] != num_steps + 1:
            raise ValueError(
                f"`strengths` must have one value per level (L={num_steps + 1}), got {strengths.shape[0]}."
            )
        x = strengths[1:].detach().cpu().double().numpy()
        x_label = "alteration strength"
    if axes is None:
        figure = Figure(figsize=(12, 3.5), layout="constrained")
        axes = figure.subplots(1, len(_PANELS))
    elif len(axes) != len(_PANELS):
        raise ValueError(f"`ax` must hold {len(_PANELS)} axes, got {len(axes)}.")
    figure = axes[0].figure
    for axis, (key, title) in zip(axes, _PANELS):
        mean = curves[key].detach().cpu().double().numpy()
        se = np.nan_to_num(curves[f"{key}_se"].detach().cpu().double().numpy())
        (line,) = axis.plot(x, mean, label=label)
        axis.fill_between(x, mean - se, mean + se, alpha=0.25, color=line.get_color())
        axis.set_title(title)
        axis.set_xlabel(x_label)
    if label is not None:
        axes[0].legend()
    return figure, axes
