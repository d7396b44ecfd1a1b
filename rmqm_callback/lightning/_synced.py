"""One alteration's evaluation in a training run: this process's shard, synced, as the values to log.

Every process runs the same collectives in the same order (the count of non-finite probes is
summed first, so all take the same branch), and a diverged model logs NaN instead of raising on
one process alone.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from rmqm_callback.alterations import Alteration
from rmqm_callback.evaluation._stream import ProgressHook, measure
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.keys import D_PREV_KEY, D_RC_LEFT_OUT_KEY, NON_FINITE_KEY, P_RC_LEFT_OUT_KEY, SECONDS_KEY, se_key
from rmqm_callback.lightning._namespaces import LightningModule, Trainer
from rmqm_callback.metrics._clean_level import CleanLevelScores
from rmqm_callback.metrics.rmqm import RMQM

#: ``RMQM.compute`` result -> logged quantity, for the quantities logged as they are.
RESULT_QUANTITIES = {
    "RMQM": "RMQM",
    "D": "D",
    "D_RC": "D_RC",
    "P_RC": "P_RC",
    "D_se": se_key("D"),
    "D_RC_se": se_key("D_RC"),
    "P_RC_se": se_key("P_RC"),
}
#: The same for the quantities only ``convention="reference"`` has.
REFERENCE_RESULT_QUANTITIES = {"D_prev": D_PREV_KEY, "D_prev_se": se_key(D_PREV_KEY)}


def logged_values(
    results: dict[str, Tensor] | None, skipped: int, num_probes: int, device: torch.device, reference: bool
) -> dict[str, Tensor]:
    """The logged quantities of one alteration (NaN where ``results`` is ``None``: non-finite representations).

    NaN tensors live on the module's device: Lightning syncs logged tensors where they are
    (NCCL needs the GPU).
    """
    names = {**RESULT_QUANTITIES, **(REFERENCE_RESULT_QUANTITIES if reference else {})}
    nan = torch.tensor(math.nan, dtype=torch.float64, device=device)
    values = {quantity: nan if results is None else results[key] for key, quantity in names.items()}
    for component, quantity in (("D_RC", D_RC_LEFT_OUT_KEY), ("P_RC", P_RC_LEFT_OUT_KEY)):
        values[quantity] = nan if results is None else results[f"{component}_left_out"] / results["num_probes"]
    values[NON_FINITE_KEY] = torch.tensor(skipped / num_probes, dtype=torch.float64, device=device)
    return values


def warn_left_out(name: str, results: dict[str, Tensor] | None) -> None:
    """Say (on process 0) when probes were left out of a spike component: part of the representation collapsed."""
    if results is None:
        return
    left_out = max(float(results["D_RC_left_out"]), float(results["P_RC_left_out"]))
    if left_out > 0:
        rank_zero_warn(
            f"RMQMCallback[{name}]: {left_out:.0f} of {float(results['num_probes']):.0f} probes were left out"
            " of a spike component (zero distances between levels): part of the representation has collapsed."
        )


def measure_in_run(
    trainer: Trainer,
    pl_module: LightningModule,
    metric: RMQM,
    probe: Probe,
    encoder: Encoder,
    name: str,
    alteration: Alteration,
    *,
    batch_size: int,
    reference: bool,
    with_curves: bool,
    clean: CleanLevelScores | None,
    progress: ProgressHook | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor] | None, dict[str, float]]:
    """Score this process's shard and sync: the values to log, the curves (if asked) and the results as floats."""
    metric = metric.to(pl_module.device)
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
        batch_size=batch_size,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        progress=progress,
        skip_non_finite=True,
        clean=clean,
    )
    # every process takes the same branch: the count is summed over processes first
    skipped = int(trainer.strategy.reduce(torch.tensor(float(skipped), device=pl_module.device), reduce_op="sum"))
    curves = None
    results: dict[str, Tensor] | None = None
    if skipped:
        rank_zero_warn(
            f"RMQMCallback[{name}]: the model gave non-finite (NaN/inf) representations for {skipped} probes"
            " (have the weights diverged?); logging NaN for this evaluation."
        )
    else:
        results = metric.compute()  # collective under DDP: every process calls it
        curves = metric.curves() if with_curves else None
    metric.reset()
    values = logged_values(results, skipped, len(probe), pl_module.device, reference)
    values[SECONDS_KEY] = values[NON_FINITE_KEY].new_tensor(time.perf_counter() - start)
    floats: dict[str, Any] = {key: float(value) for key, value in (results or {}).items()} or {"RMQM": math.nan}
    floats.update({SECONDS_KEY: float(values[SECONDS_KEY]), "non_finite": float(skipped)})
    warn_left_out(name, results)
    return values, curves, floats
