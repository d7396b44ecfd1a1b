"""Both Lightning front doors: ``pytorch_lightning`` and, when installed, the unified ``lightning.pytorch``.

``pip install lightning`` brings both packages, but their classes are distinct
(``lightning.pytorch.Trainer is pytorch_lightning.Trainer`` is ``False``). Every ``isinstance``
decision of this package goes through :func:`classes`, which returns the class of that name in
every installed namespace, and :class:`LightningCallback` is a ``Callback`` of each of them, so
one ``RMQMCallback`` works with either ``Trainer`` and with both ``LightningCLI``s.

Examples:
    >>> import pytorch_lightning
    >>> pytorch_lightning.callbacks.EarlyStopping in classes("callbacks", "EarlyStopping")
    True
    >>> issubclass(LightningCallback, pytorch_lightning.Callback)
    True

"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytorch_lightning


def _unified() -> ModuleType | None:
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        return None


#: ``pytorch_lightning`` and, when the ``lightning`` package is installed, ``lightning.pytorch``.
NAMESPACES: tuple[ModuleType, ...] = tuple(
    namespace for namespace in (pytorch_lightning, _unified()) if namespace is not None
)


def classes(module: str, name: str) -> tuple[type, ...]:
    """The class ``name`` of submodule ``module`` (e.g. ``"callbacks"``) in every installed namespace."""
    found = []
    for namespace in NAMESPACES:
        cls = getattr(importlib.import_module(f"{namespace.__name__}.{module}"), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def is_instance(value: Any, module: str, name: str) -> bool:
    """Whether ``value`` is an instance of class ``module.name`` of any installed namespace."""
    return isinstance(value, classes(module, name))


if TYPE_CHECKING:  # type checkers see both bases (``Any`` where ``lightning`` is not installed)
    from typing import TypeAlias

    import lightning.pytorch

    #: A ``Trainer`` of either namespace (the hooks' argument types).
    Trainer: TypeAlias = pytorch_lightning.Trainer | lightning.pytorch.Trainer
    #: A ``LightningModule`` of either namespace.
    LightningModule: TypeAlias = pytorch_lightning.LightningModule | lightning.pytorch.LightningModule

    class LightningCallback(pytorch_lightning.Callback, lightning.pytorch.Callback):  # type: ignore[misc]
        """A ``Callback`` of ``pytorch_lightning`` and of ``lightning.pytorch``."""

else:
    Trainer = pytorch_lightning.Trainer
    LightningModule = pytorch_lightning.LightningModule

    class LightningCallback(*classes("callbacks", "Callback")):
        """A ``Callback`` of ``pytorch_lightning`` and of ``lightning.pytorch`` (when installed)."""
