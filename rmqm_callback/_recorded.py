"""What a checkpoint records of the callback's configuration, so that ``rmqm score`` can evaluate as it did.

Alterations are recorded as ``{"class_path": ..., "init_args": ...}``, the form LightningCLI
configures them in; callables (``embed``, ``preprocess``, a PGD ``loss``) as ``"module:qualname"``
when they can be imported back (a module-level function or class), and as unrecorded (with their
``repr``) otherwise: a lambda or a closure cannot be rebuilt from a checkpoint.

Example:
    >>> from rmqm_callback import GaussianNoise
    >>> spec = alteration_spec(GaussianNoise(levels=5))
    >>> spec["class_path"], spec["init_args"]["levels"]
    ('rmqm_callback.alterations.noise.GaussianNoise', 5)
    >>> rebuild_alteration(spec, levels=7)
    GaussianNoise(levels=7, max_std=1.0, clip=(0.0, 1.0), seed=0)

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rmqm_callback.alterations import Alteration

#: The key of a callable that could not be recorded (its ``repr`` is kept for the message).
UNRECORDED = "unrecorded"


def import_path(value: Any) -> str | None:
    """``"module:qualname"`` of ``value`` if importing that gives ``value`` back, else ``None``."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    try:
        found = resolve(f"{module}:{qualname}")
    except (ImportError, AttributeError, ValueError):
        return None
    return f"{module}:{qualname}" if found is value else None


def resolve(path: str) -> Any:
    """The object at ``"module:qualname"`` (or ``"package.module.name"``).

    Raises:
        ValueError: ``path`` has neither form.
        ImportError / AttributeError: nothing is there.

    """
    if ":" in path:
        module, _, qualname = path.partition(":")
    elif "." in path:
        module, _, qualname = path.rpartition(".")
    else:
        raise ValueError(f"{path!r} is not 'module:name'.")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def callable_spec(value: Any) -> Any:
    """``None``, a submodule name (a ``str``, kept as it is), ``{"callable": path}`` or ``{UNRECORDED: repr}``."""
    if value is None or isinstance(value, str):
        return value
    path = import_path(value)
    return {"callable": path} if path is not None else {UNRECORDED: repr(value)}


def rebuild_callable(spec: Any, what: str) -> Any:
    """The value :func:`callable_spec` recorded.

    Raises:
        ValueError: it was not recorded (``what`` names it in the message).

    """
    if spec is None or isinstance(spec, str):
        return spec
    if UNRECORDED in spec:
        raise ValueError(
            f"The checkpoint's RMQMCallback used {what}={spec[UNRECORDED]}, which cannot be imported back (a lambda"
            f" or a local function); pass it as --{what} MODULE:NAME, or use a module-level function when training."
        )
    return resolve(spec["callable"])


def alteration_spec(alteration: Alteration) -> dict[str, Any]:
    """``{"class_path": ..., "init_args": ...}`` of ``alteration``."""
    cls = type(alteration)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": alteration.init_args()}


def rebuild_alteration(spec: dict[str, Any], levels: int | None = None) -> Alteration:
    """The alteration :func:`alteration_spec` recorded, with ``levels`` levels if given.

    Raises:
        ValueError: the class cannot be imported or built from the recorded arguments.

    """
    init_args = dict(spec.get("init_args", {}))
    if levels is not None:
        init_args["levels"] = levels
    try:
        cls = resolve(spec["class_path"])
        return cls.from_init_args(init_args)
    except Exception as error:
        raise ValueError(
            f"Cannot rebuild the checkpoint's alteration {spec['class_path']}(**{init_args}): {error}"
        ) from error
