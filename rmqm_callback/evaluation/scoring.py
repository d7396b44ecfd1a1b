"""Score a model offline: RMQM of its representation manifold on a probe, with no Trainer.

:func:`score` runs the same evaluation stream as the callback (:mod:`rmqm_callback.evaluation._stream`):
probe -> alteration -> embed -> distances -> metric, block by block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rmqm_callback.alterations import Alteration, GaussianNoise
from rmqm_callback.evaluation._guest_pass import GUEST_PROBES
from rmqm_callback.evaluation._stream import FullPrecision, check_alteration, check_set_up, measure
from rmqm_callback.evaluation.encoder import EmbedRule, Encoder, model_device
from rmqm_callback.evaluation.probe import Probe, as_probe, materialize
from rmqm_callback.functional._checks import check_bool, check_convention, check_int
from rmqm_callback.functional.knn import knn_for_probe, knn_k
from rmqm_callback.metrics._clean_level import CleanLevelScores
from rmqm_callback.metrics.rmqm import RMQM


def score(
    model: nn.Module,
    probe: Any,
    alteration: Alteration | None = None,
    *,
    embed: EmbedRule = None,
    preprocess: Callable[[Tensor], Any] | None = None,
    batch_size: int = 256,
    convention: str = "paper",
    normalize: bool = True,
    device: torch.device | str | None = None,
    knn: bool | int = True,
) -> dict[str, Tensor]:
    """Score ``model``'s representation manifold on ``probe`` offline: RMQM and its components (and k-NN accuracy).

    Runs in eval mode (each submodule's mode restored afterwards, also on error), under
    ``torch.inference_mode`` for input alterations, without touching BatchNorm statistics,
    parameters' ``.grad`` or the global random number streams. Probes are read and embedded in
    blocks of ``batch_size`` and trajectories are walked level by level, so memory stays flat in
    the number of probes and levels. ``torch.compile``d modules run eagerly. The first two probes
    go through the whole evaluation first, so that a probe the model cannot take, or an alteration
    that cannot work, fails with a message that names it.

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
        knn: the leave-one-out k-NN accuracy of the clean representations, as the callback logs
            it (:func:`~rmqm_callback.functional.knn_accuracy`): ``True`` where the probe has class
            labels (k = :data:`~rmqm_callback.functional.knn.DEFAULT_KNN_K`), ``k`` to require it
            with ``k`` neighbours, ``False`` for none.

    Returns:
        The :meth:`RMQM.compute` dictionary (``RMQM``, ``D``, ``D_RC``, ``P_RC``, standard errors,
        probe counts), and ``knn_accuracy`` where it is computed.

    Raises:
        TypeError / ValueError: a bad argument, an empty probe, inputs outside the alteration's
            contract, a probe the model fails on (its shape, dtype and device are named), an
            alteration whose output is not like its input, or a representation the ``embed``
            rule cannot make ``(batch, d)``; a model on the meta device; a batch of fewer probes than
            the alteration needs (PGD's default loss: 2); a guest pass of the first two probes
            forecast past 60 s (the evaluation would take hours).

    Examples:
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
    knn_k(knn)
    encoder = Encoder(model, embed=embed, preprocess=preprocess)
    probe = as_probe(probe)
    home = model_device(model)
    device = home if device is None else torch.device(device)
    if device.type != home.type or (device.index is not None and home.index not in (None, device.index)):
        raise ValueError(f"`device`={device} is not where the model is ({home}); move the model first.")
    precision = FullPrecision()
    checked = materialize(probe, limit=GUEST_PROBES)
    check_set_up(
        "score()",
        model,
        encoder,
        checked,
        {alteration.name: alteration},
        precision=precision,
        device=device,
        batch_size=batch_size,
        convention=convention,
        normalize=normalize,
        num_probes=probe.num_blocks(1),  # the probe's length, None when unknown (a loader of an iterable)
    )
    k = knn_for_probe(knn, checked.labels, _length(probe), "score")
    clean = None if k is None else CleanLevelScores(spectral=False, knn=k).to(device)
    metric = RMQM(convention=convention, normalize=normalize).to(device)
    measure(
        metric, model, encoder, probe, alteration, precision=precision, device=device, batch_size=batch_size,
        clean=clean,
    )  # fmt: skip
    return {**metric.compute(), **({} if clean is None else clean.compute())}


def _length(probe: Probe) -> int | None:
    """The number of probes, ``None`` for a loader of unknown length."""
    try:
        return len(probe)
    except TypeError:
        return None
