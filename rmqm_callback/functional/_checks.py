"""Argument checks shared by every layer: the functional core, the metrics, the alterations, ``score``, the callback.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the argument and
the value received, so a user can tell at once what to change.
"""

from __future__ import annotations

import math
from typing import Any

CONVENTIONS = ("paper", "reference")


def check_convention(convention: Any) -> str:
    """Return ``convention`` if it is one of :data:`CONVENTIONS`, else raise ``ValueError``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"`convention` must be one of {CONVENTIONS}, got {convention!r}.")
    return convention


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r} of type {type(value).__name__}.")
    return value


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """Return ``value`` as a float if it is a finite, non-negative (or positive) real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value}.")
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value}.")
    return value
