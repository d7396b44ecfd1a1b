"""The collapse alarm: Lightning ``EarlyStopping`` callbacks on the failure signals ``RMQMCallback`` logs.

:func:`collapse_alarm` returns one :class:`CollapseStopping` per signal. Each fires only on an absolute
threshold (``divergence_threshold``) or a NaN/inf (``check_finite``), never for lack of improvement:

* ``{prefix}/{alteration}/left_out/non_finite``, the share of probes whose representation was NaN/inf on
  the alteration's trajectory: stops above 0 (the weights diverged);
* ``{prefix}/{alteration}/left_out/D_RC`` and ``.../P_RC``, the shares of probes whose representation did not
  move between levels: stops above ``left_out_threshold`` (the encoder ignores its input);
* ``{prefix}/RankMe``, only with ``rankme_threshold``: stops below it. Off by default, because no RankMe
  threshold separates collapse from health on every data set we measured: 3.0 holds on the 8x8 digits
  but stops healthy triplet-trained encoders on MNIST-1D and the rendered glyphs, whose RankMe stays
  near 1 (``examples/results/collapse_runs_summary.md``).

What the default alarm catches, and what it misses, on recorded runs of three data sets, is in
``docs/guide/collapse-alarm.md``.

Examples:
    >>> import pytorch_lightning
    >>> alarm = collapse_alarm()
    >>> [stopper.monitor for stopper in alarm]
    ['rmqm/noise/left_out/non_finite', 'rmqm/noise/left_out/D_RC', 'rmqm/noise/left_out/P_RC']
    >>> isinstance(alarm[0], pytorch_lightning.callbacks.EarlyStopping)
    True
    >>> import lightning.pytorch
    >>> isinstance(alarm[0], lightning.pytorch.Callback)
    True
    >>> [stopper.monitor for stopper in collapse_alarm(rankme_threshold=3.0)][0]
    'rmqm/RankMe'

"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytorch_lightning.callbacks import EarlyStopping

from rmqm_callback.functional._checks import check_number
from rmqm_callback.keys import (
    D_RC_LEFT_OUT_KEY,
    NON_FINITE_KEY,
    P_RC_LEFT_OUT_KEY,
    RANKME_KEY,
    callback_key,
    metric_key,
)
from rmqm_callback.lightning._namespaces import classes

#: The default ``left_out_threshold``: more than half of the probes did not move, the encoder ignores its input.
LEFT_OUT_THRESHOLD = 0.5
#: Larger than any run: the alarm's ``EarlyStopping``s never stop for lack of improvement.
NEVER = 10**9


if TYPE_CHECKING:  # type checkers see both bases (``Any`` where ``lightning`` is not installed)
    import lightning.pytorch

    class CollapseStopping(EarlyStopping, lightning.pytorch.Callback):  # type: ignore[misc]
        """``pytorch_lightning``'s ``EarlyStopping``, and a ``Callback`` of ``lightning.pytorch``."""

else:

    class CollapseStopping(EarlyStopping, *classes("callbacks", "Callback")[1:]):
        """``pytorch_lightning``'s ``EarlyStopping``, and a ``Callback`` of ``lightning.pytorch`` too (when installed).

        Either namespace's ``Trainer`` accepts it and runs its checks (like
        :class:`~rmqm_callback.lightning._namespaces.LightningCallback`). It is not a subclass of
        ``lightning.pytorch``'s ``EarlyStopping``: two ``EarlyStopping`` bases would chain their
        ``__init__`` into each other.
        """


def _stopper(monitor: str, mode: str, threshold: float) -> CollapseStopping:
    return CollapseStopping(
        monitor, mode=mode, divergence_threshold=threshold, patience=NEVER, check_finite=True, verbose=True
    )


def _check_name(argument: str, value: Any) -> None:
    if not isinstance(value, str) or not value or value.strip("/") != value:
        raise ValueError(
            f"collapse_alarm({argument}={value!r}): expected the non-empty name RMQMCallback logs under,"
            f" without leading or trailing '/', for example {argument}={'rmqm' if argument == 'prefix' else 'noise'!r}"
        )


def collapse_alarm(
    prefix: str = "rmqm",
    alteration: str = "noise",
    *,
    left_out_threshold: float = LEFT_OUT_THRESHOLD,
    rankme_threshold: float | None = None,
) -> list[CollapseStopping]:
    """``EarlyStopping`` callbacks that stop a run whose encoder diverged or stopped responding to its input.

    Args:
        prefix: The ``prefix`` of the ``RMQMCallback`` to watch.
        alteration: The name its alteration logs under: ``"noise"`` for ``GaussianNoise``, ``"pgd"`` for
            ``PGD``, or the key of an alterations dict.
        left_out_threshold: Stop when more than this share of probes (0 to 1) is left out of ``D_RC`` or
            ``P_RC``: their representations did not move between levels.
        rankme_threshold: Also stop when the clean probe's RankMe falls below this (it needs
            ``RMQMCallback(spectral=True)``, the default). ``None`` (default): RankMe is not watched,
            since no threshold held on every data set measured (see the module docstring).

    Returns:
        The callbacks, to add to ``Trainer(callbacks=[rmqm_callback, *collapse_alarm()])`` of either
        ``pytorch_lightning`` or ``lightning.pytorch``. Each is an ``EarlyStopping`` with ``patience``
        larger than any run and ``check_finite=True``; which one stopped a run is in its
        ``stopping_reason`` and ``stopping_reason_message``.

    Example:
        >>> alarm = collapse_alarm("probe", "pgd", left_out_threshold=0.25)
        >>> [(stopper.monitor, stopper.divergence_threshold) for stopper in alarm][1]
        ('probe/pgd/left_out/D_RC', 0.25)

    """
    _check_name("prefix", prefix)
    _check_name("alteration", alteration)
    left_out_threshold = check_number("left_out_threshold", left_out_threshold)  # a finite number >= 0
    if left_out_threshold >= 1:
        raise ValueError(
            f"collapse_alarm(left_out_threshold={left_out_threshold!r}): expected a share in [0, 1) (a share"
            f" above it stops the run, so 1 or more could never fire); the default is {LEFT_OUT_THRESHOLD}"
        )
    alarm = []
    if rankme_threshold is not None:
        rankme_threshold = check_number("rankme_threshold", rankme_threshold)  # a finite number >= 0
        if rankme_threshold <= 1:
            raise ValueError(
                f"collapse_alarm(rankme_threshold={rankme_threshold!r}): RankMe is at least 1, so a threshold of"
                " 1 or less never fires; pass a number above 1 (3.0 held on the 8x8 digits) or None"
            )
        alarm.append(_stopper(callback_key(prefix, RANKME_KEY), "max", rankme_threshold))
    alarm.append(_stopper(metric_key(prefix, alteration, NON_FINITE_KEY), "min", 0.0))
    for key in (D_RC_LEFT_OUT_KEY, P_RC_LEFT_OUT_KEY):
        alarm.append(_stopper(metric_key(prefix, alteration, key), "min", left_out_threshold))
    return alarm
