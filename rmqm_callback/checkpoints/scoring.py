"""Score saved checkpoints as the callback evaluated them: the probe, alterations and settings it recorded.

:func:`score_checkpoint` loads one checkpoint with ``module_class.load_from_checkpoint``, reads the
state every :class:`~rmqm_callback.RMQMCallback` saved in it (the probe, or its fingerprint when
it was over the checkpoint budget; the alterations; ``embed``, ``preprocess``, ``batch_size``,
``convention``, ``normalize``, ``knn``; the trainer's precision), and evaluates the weights through
the same code path, so the values equal what the callback logged for those weights (the k-NN
accuracy too, where the probe has class labels). The ``rmqm
score`` command (:mod:`rmqm_callback.checkpoints.cli`) is a front end to it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmqm_callback.alterations import GaussianNoise
from rmqm_callback.alterations._recorded import (
    UNRECORDED,
    alteration_spec,
    rebuild_alteration,
    rebuild_callable,
    resolve,
)
from rmqm_callback.evaluation._stream import check_set_up, guest_of, measure
from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.functional._checks import check_int
from rmqm_callback.functional.knn import DEFAULT_KNN_K, class_labels_problem
from rmqm_callback.keys import KNN_ACCURACY_KEY, LOGGED_QUANTITIES, SPECTRAL_QUANTITIES
from rmqm_callback.lightning._probe_state import fingerprint, record_from_state, stored_probe
from rmqm_callback.lightning._synced import logged_values
from rmqm_callback.metrics._clean_level import CleanLevelScores
from rmqm_callback.metrics.rmqm import RMQM

#: The values every row carries, named as the callback logs them under ``{prefix}/{name}/`` (``se/D``,
#: ``left_out/D_RC``...), besides ``num_probes`` and where the row comes from; ``convention="reference"``
#: adds :data:`~rmqm_callback.keys.REFERENCE_QUANTITIES`, a callback with ``spectral=True`` its
#: :data:`~rmqm_callback.keys.SPECTRAL_QUANTITIES`, a labelled probe ``knn_accuracy``.
RESULT_KEYS = LOGGED_QUANTITIES


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


def _result_row(
    path: Path,
    key: str,
    result: dict[str, torch.Tensor] | None,
    checkpoint: dict[str, Any],
    skipped: int,
    num_probes: int,
    reference: bool,
) -> dict[str, Any]:
    """One row, with the values the callback logs; NaN where the representations were not finite (no ``result``)."""
    row: dict[str, Any] = {"checkpoint": str(path), "key": key}
    values = logged_values(result, skipped, num_probes, torch.device("cpu"), reference)
    row.update({name: float(value) for name, value in values.items()})
    row["num_probes"] = num_probes
    row["epoch"], row["global_step"] = checkpoint.get("epoch"), checkpoint.get("global_step")
    return row


def _from_repr(text: str) -> dict[str, Any]:
    """The spec of a ``GaussianNoise(...)`` that a 0.1 checkpoint recorded only as its ``repr``."""
    call = ast.parse(text, mode="eval").body
    if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "GaussianNoise" and not call.args:
        init_args = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
        return {"class_path": "rmqm_callback.alterations.noise.GaussianNoise", "init_args": init_args}
    return {UNRECORDED: f"{text}: a checkpoint of rmqm_callback 0.1 records it as text only"}


def recorded_settings(state: dict[str, Any] | None) -> dict[str, Any]:
    """What the callback recorded for ``rmqm score``; from its ``settings`` in checkpoints of version 0.1."""
    if state is None:  # no callback: the defaults
        return {"alterations": {"noise": alteration_spec(GaussianNoise())}}
    if "recorded" in state:
        return dict(state["recorded"])
    settings = dict(state.get("settings", {}))
    alterations = {name: _from_repr(text) for name, text in settings.get("alterations", {}).items()}
    return {**settings, "alterations": alterations, "embed": None, "preprocess": None}


def _representations_finite(
    model: nn.Module, encoder: Encoder, probe: Probe, plugin: Any, device: torch.device
) -> bool:
    with guest_of(model, device), plugin.val_step_context(), torch.no_grad():
        return bool(torch.isfinite(encoder(plugin.convert_input(probe.inputs[:2]).to(device))).all())


def _knn_of(recorded: dict[str, Any], knn: int | None, probe: Probe, path: Path, notes: list[str]) -> int | None:
    """The k of the k-NN accuracy (``knn``, else the recorded one); ``None``: none, or a probe without class labels."""
    k = knn if knn is not None else recorded.get("knn", DEFAULT_KNN_K)  # checkpoints before 0.3: the default
    problem = None if k is None else class_labels_problem(probe.labels)
    if problem is not None and knn is not None:
        notes.append(f"{path}: --knn {knn}: the probe gives no k-NN accuracy, {problem}.")
    if k is not None and problem is None and len(probe) <= k:
        notes.append(f"{path}: k-NN with k = {k} needs at least {k + 1} probes, the probe has {len(probe)}: NaN.")
    return None if problem is not None else k


def _score_state(
    path: Path,
    model: nn.Module,
    checkpoint: dict[str, Any],
    state: dict[str, Any] | None,
    options: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of one RMQMCallback state of a checkpoint (or of none: the defaults)."""
    recorded = recorded_settings(state)
    device, levels, batch_size = options["device"], options["levels"], options["batch_size"]
    used, note = _probe_for(state, options["probe"], path)
    notes = [note] if note else []
    if levels is not None or batch_size is not None:
        notes.append("--levels / --batch-size override what the callback used: the values are not the logged ones.")
    alterations = {name: rebuild_alteration(spec, levels) for name, spec in recorded["alterations"].items()}
    plugin = precision_plugin(recorded.get("precision"), device)
    scored = plugin.convert_module(model).to(device)
    embed, preprocess = options["embed"], options["preprocess"]
    encoder = Encoder(
        scored,
        embed=_override(embed) if embed is not None else rebuild_callable(recorded.get("embed"), "embed"),
        preprocess=resolve(preprocess)
        if preprocess is not None
        else rebuild_callable(recorded.get("preprocess"), "preprocess"),
    )
    blocks = batch_size or recorded.get("batch_size", 256)
    convention, normalize = recorded.get("convention", "paper"), recorded.get("normalize", True)
    keys = [f"{recorded.get('prefix', 'rmqm')}/{name}" for name in alterations]
    k = _knn_of(recorded, options["knn"], used, path, notes)
    spectral = bool(recorded.get("spectral", True))  # checkpoints before 0.3: the default
    once = (SPECTRAL_QUANTITIES if spectral else ()) + ((KNN_ACCURACY_KEY,) if k is not None else ())
    reference = convention == "reference"
    clean = CleanLevelScores(spectral=spectral, knn=k).to(device) if once else None  # of the first alteration
    if not _representations_finite(scored, encoder, used, plugin, device):  # as the callback, log NaN
        notes.append(f"{path}: the model gives non-finite representations (diverged weights?): NaN.")
        rows = [_result_row(path, key, None, checkpoint, len(used), len(used), reference) for key in keys]
        return [{**row, **dict.fromkeys(once, math.nan)} for row in rows], notes
    check_set_up(
        "rmqm score", scored, encoder, used, alterations, precision=plugin, device=device, batch_size=blocks,
        convention=convention, normalize=normalize,
    )  # fmt: skip
    converted = Probe(plugin.convert_input(used.inputs), used.labels)
    rows = []
    for key, alteration in zip(keys, alterations.values()):
        metric = RMQM(convention=convention, normalize=normalize).to(device)
        skipped = measure(
            metric, scored, encoder, converted, alteration, precision=plugin, device=device, batch_size=blocks,
            skip_non_finite=True, clean=clean if not rows else None,
        )  # fmt: skip
        if skipped:
            notes.append(f"{path}: {key}: {skipped} probes gave non-finite representations: NaN.")
        result = None if skipped else metric.compute()
        rows.append(_result_row(path, key, result, checkpoint, skipped, len(used), reference))
    if clean is not None:  # one value per callback, in each of its rows
        scores = {name: float(value) for name, value in clean.compute().items()}
        rows = [{**row, **scores} for row in rows]
    return rows, notes


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
    knn: int | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Score one checkpoint as every RMQMCallback in it evaluated: one row per callback and alteration.

    Args:
        path: the checkpoint file.
        module_class: the ``LightningModule`` class whose ``load_from_checkpoint`` loads it.
        probe: the probe, where the checkpoint holds none (or to score another one).
        levels: every alteration with this many levels instead of the recorded ones.
        batch_size: instead of the recorded one.
        device: where to evaluate (default: the CPU; the values equal the logged ones on the device
            type the callback ran on, as noise is drawn per device type).
        embed: a submodule name or ``"module:name"`` of a callable, instead of the recorded one.
        preprocess: ``"module:name"`` of a callable, instead of the recorded one (needed where
            the callback used a lambda, which a checkpoint cannot record).
        knn: the ``k`` of the k-NN accuracy instead of the recorded one (``knn=False`` recorded
            none; a checkpoint of a version before ``knn`` gets the default k).

    Returns:
        ``(rows, notes)``: rows with ``checkpoint``, ``key`` (``{prefix}/{name}``), ``epoch``,
        ``global_step``, ``num_probes`` and the values under the names the callback logs them
        (``{key}/{name}`` is the logged key): ``RMQM``, ``D``, ``D_RC``, ``P_RC``, the left-out
        shares ``left_out/D_RC``, ``left_out/P_RC``, ``left_out/non_finite``, the standard errors
        ``se/D``, ``se/D_RC``, ``se/P_RC`` (``D_prev`` and ``se/D_prev`` with
        ``convention="reference"``), and, once per callback and the same in each of its rows,
        ``RankMe`` and ``alpha_ReQ`` (``spectral=True``) and, where the probe has class labels,
        ``knn_accuracy``; NaN values, as the callback logs them, where the model gave non-finite
        representations; and notes for the user (a probe other than the callback's, overridden
        settings, NaN).

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
    if knn is not None:
        check_int("knn", knn, minimum=1)
    options = {
        "probe": probe, "levels": levels, "batch_size": batch_size, "device": device, "embed": embed,
        "preprocess": preprocess, "knn": knn,
    }  # fmt: skip
    rows, notes = [], []
    states: list[dict[str, Any] | None] = list(callback_states(checkpoint).values()) or [None]
    for state in states:
        state_rows, state_notes = _score_state(path, model, checkpoint, state, options)
        rows += state_rows
        notes += state_notes
    return rows, notes


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by key (in first-seen order), each group best RMQM first (NaN last)."""
    order = {key: position for position, key in enumerate(dict.fromkeys(row["key"] for row in rows))}

    def rank(row: dict[str, Any]) -> tuple[int, float]:
        value = row["RMQM"]
        return order[row["key"]], -value if not math.isnan(value) else math.inf

    return sorted(rows, key=rank)
