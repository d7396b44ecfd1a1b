"""What a checkpoint records of the callback's configuration, so that ``rmqm score`` can evaluate as it did.

Alterations are recorded as ``{"class_path": ..., "init_args": ...}``, the form LightningCLI
configures them in; callables (``embed``, ``preprocess``, a PGD ``loss``) as ``"module:qualname"``
when they can be imported back (a module-level function or class), and as unrecorded (with their
``repr``) otherwise: a lambda or a closure cannot be rebuilt from a checkpoint.

Examples:
    >>> from rmqm_callback import GaussianNoise
    >>> spec = alteration_spec(GaussianNoise(levels=5))
    >>> spec["class_path"], spec["init_args"]["levels"]
    ('rmqm_callback.alterations.noise.GaussianNoise', 5)
    >>> rebuild_alteration(spec, levels=7)
    GaussianNoise(levels=7, max_std=1.0, clip=(0.0, 1.0), seed=0)

"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rmqm_callback.alterations.base import Alteration

#: The key of a callable that could not be recorded (its ``repr`` is kept for the message).
UNRECORDED = "unrecorded"


def import_path(value: Any) -> str | None:
    """``"module:qualname"`` of ``value`` if importing that gives ``value`` back, else ``None``.

    Not for what the training script itself defines (module ``__main__``): another program, such
    as ``rmqm score``, has another ``__main__``.
    """
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname or module == "__main__":
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
        found: Any = importlib.import_module(module)
    elif "." in path:  # package.module.Class or package.module.Outer.Inner: the longest importable module
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                found = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                if cut == 1:
                    raise
                continue
            qualname = ".".join(parts[cut:])
            break
    else:
        raise ValueError(f"{path!r} is not 'module:name'.")
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
    """``{"class_path": ..., "init_args": ...}`` of ``alteration``, or ``{UNRECORDED: why}`` when it cannot be rebuilt.

    It cannot when its class is not importable (defined in the training script or in a function),
    or when its ``__init__`` takes an argument that ``init_args()`` does not return (it would be
    rebuilt with that argument's default, silently).
    """
    cls = type(alteration)
    path = import_path(cls)
    if path is None:
        return {UNRECORDED: f"{alteration!r}: its class {cls.__qualname__} cannot be imported from {cls.__module__}"}
    init_args = alteration.init_args()
    taken = [
        name
        for name, parameter in list(inspect.signature(cls.__init__).parameters.items())[1:]
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    missing = [name for name in taken if name not in init_args]
    if missing:
        return {
            UNRECORDED: f"{alteration!r}: its __init__ takes {missing}, which {cls.__qualname__}.init_args() does"
            " not return (override init_args)"
        }
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def rebuild_alteration(spec: dict[str, Any], levels: int | None = None) -> Alteration:
    """The alteration :func:`alteration_spec` recorded, with ``levels`` levels if given.

    Raises:
        ValueError: the class cannot be imported or built from the recorded arguments.

    """
    if UNRECORDED in spec:
        raise ValueError(f"The checkpoint's alteration cannot be rebuilt: {spec[UNRECORDED]}.")
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
