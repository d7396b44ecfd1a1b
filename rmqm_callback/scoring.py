"""Score a model: probe -> alteration -> embed -> distances -> metric, streamed block by block.

:func:`accumulate` is the one code path that both :func:`score` (offline) and the Lightning
callback use. It reads the probe in blocks of ``batch_size``, walks each block's trajectory
level by level keeping only the original and previous representations, and hands the metric
``(n, J)`` distance series: peak memory grows with neither the number of probes nor, beyond
those ``n x J`` numbers, the number of levels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from rmqm_callback._checks import check_bool, check_convention, check_int
from rmqm_callback.alterations import Alteration, GaussianNoise
from rmqm_callback.encoder import EmbedRule, Encoder, evaluation_mode, model_device
from rmqm_callback.functional.rmqm import prepare_embeddings
from rmqm_callback.metric import RMQM
from rmqm_callback.probe import Probe, ProbeBatch, as_probe

#: ``progress(done_blocks, total_blocks)``, called after every block (total ``None`` if unknown).
ProgressHook = Callable[[int, int], None]


def check_alteration(alteration: Any) -> Alteration:
    """Return ``alteration`` if it implements :class:`Alteration`, else raise ``TypeError``."""
    if not isinstance(alteration, Alteration):
        raise TypeError(
            "`alteration` must be an rmqm_callback.alterations.Alteration (GaussianNoise, PGD or a subclass"
            f" of InputAlteration), got {type(alteration).__name__}."
        )
    return alteration


def _block_distances(
    batch: ProbeBatch, alteration: Alteration, encoder: Encoder, batch_size: int, normalize: bool
) -> tuple[Tensor, Tensor]:
    """Distances ``(n, J)`` to the original and to the previous level for one block of probes."""
    origin = previous = None
    to_original: list[Tensor] = []
    to_previous: list[Tensor] = []
    for representation in alteration.trajectory(batch, encoder, batch_size):
        phi = prepare_embeddings(representation, normalize)
        if origin is None:
            origin = phi
        else:
            to_original.append(torch.linalg.vector_norm(phi - origin, dim=-1))
            to_previous.append(torch.linalg.vector_norm(phi - previous, dim=-1))
        previous = phi
    if len(to_original) != alteration.levels - 1:
        raise ValueError(
            f"{alteration!r} yielded {len(to_original) + 1} levels for a block, but declares {alteration.levels}."
        )
    return torch.stack(to_original, dim=1), torch.stack(to_previous, dim=1)


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
) -> int:
    """Add this process's share of the probe's trajectories to ``metric`` (on ``device``).

    Process ``rank`` of ``world_size`` reads blocks ``rank, rank + world_size, ...``; a process
    without a block still updates the metric (with no probes) so that all share state shapes.
    A probe whose representations are not finite raises ``ValueError``, or with
    ``skip_non_finite`` is left out and counted (a process must not raise alone under DDP).

    Returns:
        The number of probes left out for non-finite representations.
    """
    num_steps = alteration.levels - 1
    num_blocks = probe.num_blocks(batch_size)
    total = None if num_blocks is None else len(range(rank, num_blocks, world_size))
    done = skipped = 0
    for batch in probe.blocks(batch_size, rank, world_size):
        do, dp = _block_distances(batch.to(device), alteration, encoder, batch_size, metric.normalize)
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
    """Evaluate ``model`` as a guest: eval mode, restored modes, and untouched global RNG streams."""
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), evaluation_mode(model):
        yield


def score(
    model: nn.Module,
    probe: Any,
    alteration: Alteration | None = None,
    *,
    embed: EmbedRule = None,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 256,
    convention: str = "paper",
    normalize: bool = True,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Score ``model``'s representation manifold on ``probe`` offline: RMQM and its components.

    Runs in eval mode (each submodule's mode restored afterwards, also on error), under
    ``torch.inference_mode`` for input alterations, without touching BatchNorm statistics,
    parameters' ``.grad`` or the global random number streams. Probes are read and embedded in
    blocks of ``batch_size`` and trajectories are walked level by level, so memory stays flat in
    the number of probes and levels.

    Args:
        model: the encoder (not moved; its parameters' device is used unless ``device`` is given).
        probe: a tensor of inputs, an ``(inputs, labels)`` pair, a ``Dataset`` or a ``DataLoader``
            (not shuffled: alterations are keyed by the probe's position).
        alteration: :class:`~rmqm_callback.alterations.GaussianNoise` (the default, the paper's
            schedule), :class:`~rmqm_callback.alterations.PGD` or any
            :class:`~rmqm_callback.alterations.Alteration`.
        embed: the representation: ``None`` for the model's output (first element of a tuple),
            a submodule name, or a callable ``(model, inputs) -> Tensor``.
        preprocess: applied to altered inputs before the model (e.g. mean/std normalisation);
            alterations work in the raw input range, as in the paper.
        batch_size: probes per block, and the most inputs per forward pass.
        convention: ``"paper"`` or ``"reference"``.
        normalize: L2-normalise representations before measuring distances.
        device: where probes are sent; must be where the model is. Default: the model's device.

    Returns:
        The :meth:`RMQM.compute` dictionary (``RMQM``, ``D``, ``D_RC``, ``P_RC``, standard errors,
        probe counts).

    Raises:
        TypeError / ValueError: a bad argument, an empty probe, inputs outside the alteration's
            contract, or a representation the ``embed`` rule cannot make ``(batch, d)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rmqm_callback import GaussianNoise, score
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh())
        >>> probe = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> result = score(model, probe, GaussianNoise(levels=10), batch_size=16)
        >>> sorted(result)[:4], int(result["num_probes"])
        (['D', 'D_RC', 'D_RC_left_out', 'D_RC_se'], 32)

    """
    alteration = check_alteration(GaussianNoise() if alteration is None else alteration)
    check_int("batch_size", batch_size, minimum=1)
    check_convention(convention)
    check_bool("normalize", normalize)
    encoder = Encoder(model, embed=embed, preprocess=preprocess)
    probe = as_probe(probe)
    home = model_device(model)
    device = home if device is None else torch.device(device)
    if device.type != home.type or (device.index is not None and home.index not in (None, device.index)):
        raise ValueError(f"`device`={device} is not where the model is ({home}); move the model first.")
    metric = RMQM(convention=convention, normalize=normalize).to(device)
    with guest_of(model, device):
        accumulate(metric, encoder, probe, alteration, batch_size=batch_size, device=device)
    return metric.compute()
