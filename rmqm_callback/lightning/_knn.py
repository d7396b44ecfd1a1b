"""Whether a callback logs the k-NN accuracy of its probe, and the message for a monitor of it where it does not.

The key ``{prefix}/knn_accuracy`` is logged when ``knn`` is not ``False`` and the probe has class
labels. Until an int probe (or a Dataset / DataLoader) is read, whether it has labels is not
known, and the key counts as logged; :func:`~rmqm_callback.lightning._schedule.check_monitors`
runs once the probe is read, so a monitor of the key is refused, with this message, before training.
"""

from __future__ import annotations

from typing import Any

from rmqm_callback.evaluation.probe import Probe
from rmqm_callback.functional.knn import class_labels_problem, knn_k
from rmqm_callback.keys import KNN_ACCURACY_KEY, callback_key


def knn_unlogged(prefix: str, knn: Any, probe: Probe | None) -> dict[str, str]:
    """``{key: why}`` for the k-NN accuracy key when the callback does not log it; ``{}`` when it does (or may).

    Examples:
        >>> import torch
        >>> knn_unlogged("rmqm", True, Probe(torch.zeros(4, 2), torch.arange(4)))
        {}
        >>> print(knn_unlogged("rmqm", True, Probe(torch.zeros(4, 2)))["rmqm/knn_accuracy"][:69])
        a monitor watches 'rmqm/knn_accuracy', the k-NN accuracy of the probe
    """
    key = callback_key(prefix, KNN_ACCURACY_KEY)
    if knn_k(knn) is None:
        why = f"a monitor watches {key!r}, but RMQMCallback(knn=False) computes no k-NN accuracy; pass knn=True."
        return {key: why}
    problem = class_labels_problem(probe.labels) if type(probe) is Probe else None  # None: not read yet
    if problem is None:
        return {}
    return {
        key: f"a monitor watches {key!r}, the k-NN accuracy of the probe, but the probe needs labels for it and"
        f" {problem}. Pass probe=(inputs, labels), a Dataset or DataLoader of (input, label) pairs, or probe=n of"
        " labelled validation data."
    }
