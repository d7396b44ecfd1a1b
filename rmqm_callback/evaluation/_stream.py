"""The evaluation stream: probe -> alteration -> embed -> distances -> metric, block by block.

:func:`accumulate` is the one code path that :func:`~rmqm_callback.score` (offline), the
``score`` command and the Lightning callback use. It reads the probe in blocks of
``batch_size``, walks each block's trajectory level by level keeping the original, the previous
and at most a chunk of pending representations (:mod:`~rmqm_callback.evaluation._distances`), and
hands the metric ``(n, J)`` distance series: peak memory grows with neither the number of probes
nor, beyond those ``n x J`` numbers, the number of levels.
:func:`measure` wraps it in the guest's manners and the run's precision, and :func:`check_set_up`
sends two probes through it before anything else (see :mod:`rmqm_callback.evaluation._guest_pass`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from rmqm_callback.alterations import Alteration, InputAlteration
from rmqm_callback.alterations.base import EncoderLike
from rmqm_callback.evaluation._distances import TrajectoryDistances
from rmqm_callback.evaluation._guest_clock import GUEST_PASS_LIMIT_S, Forecast, evaluated_probes
from rmqm_callback.evaluation._guest_pass import guest_pass
from rmqm_callback.evaluation._rng import untouched_random_streams
from rmqm_callback.evaluation._set_up_checks import check_batches, check_model_has_data
from rmqm_callback.evaluation.encoder import Encoder, evaluation_mode
from rmqm_callback.evaluation.probe import Probe, ProbeBatch
from rmqm_callback.metrics._clean_level import CleanLevelScores
from rmqm_callback.metrics.rmqm import RMQM


class PrecisionLike(Protocol):
    """What an evaluation needs of a Lightning precision plugin."""

    def convert_input(self, data: Any) -> Any:
        """Probe inputs as the model gets them (e.g. bfloat16 under ``"bf16-true"``)."""

    def val_step_context(self) -> AbstractContextManager:
        """The context of a validation step (autocast under mixed precision)."""


class FullPrecision:
    """The precision of a plain PyTorch call: inputs unchanged, no autocast."""

    def convert_input(self, data: Any) -> Any:
        """``data`` unchanged."""
        return data

    def val_step_context(self) -> AbstractContextManager:
        """No context."""
        return nullcontext()


#: ``progress(done_blocks, total_blocks)``, called after every block (total ``None`` if unknown).
ProgressHook = Callable[[int, "int | None"], None]


def check_alteration(alteration: Any) -> Alteration:
    """Return ``alteration`` if it implements :class:`Alteration`, else raise ``TypeError``."""
    if not isinstance(alteration, Alteration):
        raise TypeError(
            "`alteration` must be an rmqm_callback.alterations.Alteration (GaussianNoise, PGD or a subclass"
            f" of InputAlteration), got {type(alteration).__name__}."
        )
    return alteration


def _block_distances(
    batch: ProbeBatch,
    alteration: Alteration,
    encoder: Encoder,
    batch_size: int,
    normalize: bool,
    clean: CleanLevelScores | None = None,
) -> tuple[Tensor, Tensor]:
    """Distances ``(n, J)`` to the original and to the previous level for one block of probes.

    The clean representations (level 0) also go to ``clean``, when given, with the probes' labels.
    """
    series = TrajectoryDistances(normalize)
    for representation in alteration.trajectory(batch, encoder, batch_size):
        if series.levels == 0 and clean is not None:
            clean.update(representation, batch.indices, batch.labels)
        series.add(representation)
    if series.levels != alteration.levels:
        raise ValueError(
            f"{alteration!r} yielded {series.levels} levels for a block, but declares {alteration.levels}."
        )
    return series.result()


def _finite_rows(do: Tensor, dp: Tensor, batch: ProbeBatch, alteration: Alteration, skip: bool) -> Tensor | None:
    """Rows whose distances are all finite; ``None`` when all are. Raises unless ``skip``."""
    finite = torch.isfinite(do) & torch.isfinite(dp)
    if bool(finite.all()):
        return None
    if not skip:
        row, column = (~finite).nonzero()[0].tolist()
        raise ValueError(
            f"The encoder gave a non-finite (NaN/inf) representation for probe {int(batch.indices[row])}"
            f" at or before level {column + 1} of {alteration!r}."
        )
    return finite.all(dim=1)


def accumulate(
    metric: RMQM,
    encoder: Encoder,
    probe: Probe,
    alteration: Alteration,
    *,
    batch_size: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    progress: ProgressHook | None = None,
    skip_non_finite: bool = False,
    clean: CleanLevelScores | None = None,
) -> int:
    """Add this process's share of the probe's trajectories to ``metric`` (on ``device``).

    Process ``rank`` of ``world_size`` reads blocks ``rank, rank + world_size, ...``; a process
    without a block still updates the metric (with no probes) so that all share state shapes.
    A probe whose representations are not finite raises ``ValueError``, or with
    ``skip_non_finite`` is left out and counted (a process must not raise alone under DDP).
    ``clean``, when given, receives the clean (level 0) representations and labels of every block.

    Returns:
        The number of probes left out for non-finite representations.
    """
    num_steps = alteration.levels - 1
    num_blocks = probe.num_blocks(batch_size)
    total = None if num_blocks is None else len(range(rank, num_blocks, world_size))
    done = skipped = 0
    for batch in probe.blocks(batch_size, rank, world_size):
        do, dp = _block_distances(batch.to(device), alteration, encoder, batch_size, metric.normalize, clean)
        keep = _finite_rows(do, dp, batch, alteration, skip_non_finite)
        if keep is not None:
            do, dp = do[keep], dp[keep]
            skipped += int((~keep).sum())
        metric.update(distances=(do, dp))
        done += 1
        if progress is not None:
            progress(done, total)
    if progress is not None and total is None:
        progress(done, done)  # the length was unknown until the end
    if done == 0:
        empty = torch.zeros(0, num_steps, device=device)
        metric.update(distances=(empty, empty))
    return skipped


@contextmanager
def guest_of(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Evaluate ``model`` as a guest: eval mode, restored modes, untouched global random streams, eager code.

    ``torch.compile``d modules run eagerly inside (``torch.compiler.set_stance("force_eager")``):
    the probe's shapes and eval mode would otherwise make dynamo recompile, and the training graph
    recompiled with dynamic shapes computes other (if close) numbers.
    """
    with untouched_random_streams(device), evaluation_mode(model), torch.compiler.set_stance("force_eager"):
        yield


def measure(
    metric: RMQM,
    model: nn.Module,
    encoder: Encoder,
    probe: Probe,
    alteration: Alteration,
    *,
    precision: PrecisionLike,
    device: torch.device,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    progress: ProgressHook | None = None,
    skip_non_finite: bool = False,
    clean: CleanLevelScores | None = None,
) -> int:
    """:func:`accumulate` as a guest of ``model``, under ``precision``'s validation context for input alterations.

    ``probe``'s inputs are expected converted already (``precision.convert_input``). PGD's input
    gradients stay in full precision: only input alterations run under autocast.
    """
    context = precision.val_step_context() if isinstance(alteration, InputAlteration) else nullcontext()
    with guest_of(model, device), context:
        return accumulate(
            metric,
            encoder,
            probe,
            alteration,
            batch_size=batch_size,
            device=device,
            rank=rank,
            world_size=world_size,
            progress=progress,
            skip_non_finite=skip_non_finite,
            clean=clean,
        )


def check_set_up(
    owner: str,
    model: nn.Module,
    encoder: Encoder,
    probe: Probe,
    alterations: Mapping[str, Alteration],
    *,
    precision: PrecisionLike,
    device: torch.device,
    batch_size: int,
    convention: str,
    normalize: bool,
    num_probes: int | None = None,
    world_size: int = 1,
    time_limit_s: float = GUEST_PASS_LIMIT_S,
) -> Forecast:
    """Send the first two probes through a whole evaluation (:func:`~rmqm_callback.evaluation._guest_pass.guest_pass`).

    Nothing of it is kept: the metrics are scratch ones, the model is left as it was. Before it, a
    model on the meta device and batches too small for an alteration are refused; while it runs, a
    guest pass forecast past ``time_limit_s`` seconds. ``num_probes`` is the number an evaluation
    scores (default ``len(probe)``; ``None`` when unknown), shared by ``world_size`` processes.
    Returns the forecast of one evaluation's cost on this process.
    """
    check_model_has_data(owner, model)
    num_probes = len(probe) if num_probes is None else num_probes
    check_batches(owner, alterations, num_probes, batch_size)

    def prepare(inputs: Tensor) -> Tensor:
        return precision.convert_input(inputs).to(device)

    def forward(inputs: Tensor) -> None:
        # no_grad, not inference_mode: a cache the model builds on its first forward (positional
        # tables...) must stay usable by training, which has not run yet
        with guest_of(model, device), precision.val_step_context(), torch.no_grad():
            encoder(inputs)

    def trajectory(first: Probe, alteration: Alteration, watched: EncoderLike) -> None:
        # each process's own check: a sync would be a collective that a process refusing before it never joins
        metric = RMQM(convention=convention, normalize=normalize, sync_on_compute=False).to(device)
        clean = CleanLevelScores(spectral=True, sync_on_compute=False).to(device)
        converted = Probe(precision.convert_input(first.inputs), first.labels)
        watched_encoder = cast(Encoder, watched)  # the stream uses only what an EncoderLike has
        measure(
            metric, model, watched_encoder, converted, alteration, precision=precision, device=device,
            batch_size=batch_size, clean=clean,
        )  # fmt: skip
        with warnings.catch_warnings():  # two probes of an untrained model may well look collapsed
            warnings.simplefilter("ignore")
            metric.compute()
            clean.compute()

    parameters = next(iter(model.parameters()), None)
    evaluated = evaluated_probes(num_probes, batch_size, world_size)
    with untouched_random_streams(device):  # an impure alteration may draw from the global streams
        return guest_pass(
            owner, probe, alterations, prepare=prepare, forward=forward, trajectory=trajectory, encoder=encoder,
            parameters=parameters, batch_size=batch_size, evaluated=evaluated, time_limit_s=time_limit_s,
        )  # fmt: skip
