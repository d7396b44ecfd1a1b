"""Score saved checkpoints as the callback evaluated them: the probe, alterations and settings it recorded.

:func:`score_checkpoint` loads one checkpoint with ``module_class.load_from_checkpoint``, reads the
state every :class:`~rmqm_callback.RMQMCallback` saved in it (the probe, or its fingerprint when
it was over the checkpoint budget; the alterations; ``embed``, ``preprocess``, ``batch_size``,
``convention``, ``normalize``; the trainer's precision), and evaluates the weights through the
same code path, so the values equal what the callback logged for those weights. The ``rmqm
score`` command (:mod:`rmqm_callback.cli`) is a front end to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmqm_callback._evaluation import check_set_up, measure
from rmqm_callback._probe_state import fingerprint, record_from_state, stored_probe
from rmqm_callback._recorded import rebuild_alteration, rebuild_callable, resolve
from rmqm_callback.alterations import Alteration, GaussianNoise
from rmqm_callback.encoder import Encoder
from rmqm_callback.metric import RMQM
from rmqm_callback.probe import Probe

#: The result keys each row carries, besides where it comes from.
RESULT_KEYS = ("RMQM", "D", "D_RC", "P_RC", "D_se", "D_RC_se", "P_RC_se", "num_probes")


def find_checkpoints(paths: Iterable[str | Path]) -> list[Path]:
    """Checkpoint files: each path itself, or every ``*.ckpt`` under a folder (sorted).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no ``*.ckpt`` file.

    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(path.rglob("*.ckpt"))
            if not inside:
                raise FileNotFoundError(f"No *.ckpt file under the folder {str(path)!r}.")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"No checkpoint file or folder at {str(path)!r}.")
    return found


def load_probe(path: str | Path) -> Probe:
    """A probe saved with ``torch.save``: a tensor of inputs, or an ``(inputs, labels)`` pair.

    Raises:
        FileNotFoundError / ValueError: no file, or it holds something else.

    """
    if not Path(path).exists():
        raise FileNotFoundError(f"No probe file at {str(path)!r}.")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(saved, torch.Tensor):
        return Probe(saved)
    if isinstance(saved, (tuple, list)) and len(saved) == 2 and isinstance(saved[0], torch.Tensor):
        return Probe(saved[0], saved[1])
    raise ValueError(
        f"The probe file {str(path)!r} holds a {type(saved).__name__}; save a tensor of inputs or an"
        " (inputs, labels) pair with torch.save."
    )


def callback_states(checkpoint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The states RMQMCallbacks saved in a checkpoint, by state key."""
    states = checkpoint.get("callbacks", {})
    return {
        key: state
        for key, state in states.items()
        if isinstance(key, str) and key.startswith("RMQMCallback") and isinstance(state, dict)
    }


def precision_plugin(precision: str | None, device: torch.device) -> Any:
    """The Lightning precision plugin a ``Trainer(precision=...)`` would use (``None``: full precision).

    Raises:
        ValueError: a precision this command cannot reproduce.

    """
    from pytorch_lightning.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision

    if precision in (None, "32-true", "32"):
        return Precision()
    if precision in ("64-true", "64"):
        return DoublePrecision()
    if precision in ("16-true", "bf16-true"):
        return HalfPrecision(precision)  # type: ignore[arg-type]
    if precision in ("16-mixed", "bf16-mixed"):
        return MixedPrecision(precision, device.type)  # type: ignore[arg-type]
    raise ValueError(f"The checkpoint was trained with precision={precision!r}, which `rmqm score` cannot reproduce.")


def _probe_for(state: dict[str, Any] | None, probe: Probe | None, path: Path) -> tuple[Probe, str | None]:
    """The probe to score with, and a note when it is not the one the callback used."""
    record = None if state is None else record_from_state(state)
    stored = None if record is None else stored_probe(record)
    if probe is None:
        if stored is None:
            why = (
                "no RMQMCallback state"
                if state is None
                else "an RMQMCallback state without its probe (it was over the checkpoint budget, checkpoint_probe_mib)"
            )
            raise ValueError(
                f"{path} holds {why}: pass the probe with --probe FILE (torch.save of the probe inputs, or of an"
                " (inputs, labels) pair)."
            )
        return stored, None
    if record is not None and fingerprint(probe) != record["fingerprint"]:
        return probe, f"{path}: the --probe differs from the probe the callback used; the values are not comparable."
    return probe, None


def _override(embed: str) -> Any:
    """An ``--embed`` value: ``"module:name"`` of a callable, else a submodule name."""
    return resolve(embed) if ":" in embed else embed


def _result_row(path: Path, key: str, result: dict[str, torch.Tensor], checkpoint: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"checkpoint": str(path), "key": key}
    row.update({name: float(result[name]) for name in RESULT_KEYS})
    row["num_probes"] = int(row["num_probes"])
    row["epoch"], row["global_step"] = checkpoint.get("epoch"), checkpoint.get("global_step")
    return row


def score_checkpoint(
    path: str | Path,
    module_class: Any,
    *,
    probe: Probe | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    embed: Any = None,
    preprocess: Any = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Score one checkpoint as every RMQMCallback in it evaluated: one row per callback and alteration.

    Args:
        path: the checkpoint file.
        module_class: the ``LightningModule`` class whose ``load_from_checkpoint`` loads it.
        probe: the probe, where the checkpoint holds none (or to score another one).
        levels: every alteration with this many levels instead of the recorded ones.
        batch_size: instead of the recorded one.
        device: where to evaluate (default: the CPU).
        embed: a submodule name or ``"module:name"`` of a callable, instead of the recorded one.
        preprocess: ``"module:name"`` of a callable, instead of the recorded one (needed where
            the callback used a lambda, which a checkpoint cannot record).

    Returns:
        ``(rows, notes)``: rows with ``checkpoint``, ``key`` (``{prefix}/{name}``), ``RMQM``,
        ``D``, ``D_RC``, ``P_RC``, their SEs, ``num_probes``, ``epoch``, ``global_step``; and
        notes for the user (a probe that differs from the callback's).

    Raises:
        ValueError: the class cannot load the checkpoint, no probe, or a setting that cannot be rebuilt.

    """
    path = Path(path)
    device = torch.device("cpu" if device is None else device)
    try:
        model = module_class.load_from_checkpoint(path, map_location=device)
    except Exception as error:
        name = getattr(module_class, "__qualname__", repr(module_class))
        raise ValueError(f"{name}.load_from_checkpoint cannot load {path}: {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ValueError(f"{module_class!r}.load_from_checkpoint gave a {type(model).__name__}, not a module.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # the file the class just loaded
    states: dict[str, dict[str, Any] | None] = dict(callback_states(checkpoint)) or {"RMQMCallback": None}
    rows, notes = [], []
    for state in states.values():
        recorded = {} if state is None else state.get("recorded", {})
        used, note = _probe_for(state, probe, path)
        notes += [note] if note else []
        alterations: dict[str, Alteration] = {"noise": GaussianNoise(levels=levels or 100)}
        if recorded.get("alterations"):
            alterations = {name: rebuild_alteration(spec, levels) for name, spec in recorded["alterations"].items()}
        plugin = precision_plugin(recorded.get("precision"), device)
        scored = plugin.convert_module(model).to(device)
        encoder = Encoder(
            scored,
            embed=_override(embed) if embed is not None else rebuild_callable(recorded.get("embed"), "embed"),
            preprocess=resolve(preprocess) if preprocess is not None else rebuild_callable(
                recorded.get("preprocess"), "preprocess"
            ),
        )
        blocks = batch_size or recorded.get("batch_size", 256)
        convention, normalize = recorded.get("convention", "paper"), recorded.get("normalize", True)
        check_set_up(
            "rmqm score",
            scored,
            encoder,
            used,
            alterations,
            precision=plugin,
            device=device,
            batch_size=blocks,
            convention=convention,
            normalize=normalize,
        )
        converted = Probe(plugin.convert_input(used.inputs), used.labels)
        for name, alteration in alterations.items():
            metric = RMQM(convention=convention, normalize=normalize).to(device)
            measure(metric, scored, encoder, converted, alteration, precision=plugin, device=device, batch_size=blocks)
            key = f"{recorded.get('prefix', 'rmqm')}/{name}"
            rows.append(_result_row(path, key, metric.compute(), checkpoint))
    return rows, notes


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by key (in first-seen order), each group best RMQM first (NaN last)."""
    order = {key: position for position, key in enumerate(dict.fromkeys(row["key"] for row in rows))}

    def rank(row: dict[str, Any]) -> tuple[int, float]:
        value = row["RMQM"]
        return order[row["key"]], -value if not math.isnan(value) else math.inf

    return sorted(rows, key=rank)

