"""The package's layers: each subpackage imports only the ones below it, and no module imports itself back.

Every import in every module counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rmqm_callback"
#: Lowest first; a module may import from its own layer and the ones before it.
LAYERS = ("_version", "keys", "functional", "metrics", "alterations", "evaluation", "lightning", "checkpoints")
TOP = ("__init__", "__main__")  # the package's front door sits above every layer


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The ``rmqm_callback`` modules ``path`` imports (``from a.b import c`` counts ``a.b.c`` if it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "rmqm_callback" and name in MODULES}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    first = module.split(".")[1] if "." in module else "__init__"
    if first in TOP:
        return len(LAYERS)
    return LAYERS.index(first)


def test_every_module_belongs_to_a_layer():
    assert all(module == "rmqm_callback" or module.split(".")[1] in LAYERS + TOP for module in MODULES), sorted(
        module for module in MODULES if module != "rmqm_callback" and module.split(".")[1] not in LAYERS + TOP
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_lower_ones(module):
    upward = sorted(name for name in imports_of(MODULES[module]) if layer(name) > layer(module))
    own = LAYERS[layer(module)] if layer(module) < len(LAYERS) else "top"
    assert not upward, f"{module} (layer {own}) imports {upward}"


def test_no_import_circle():
    graph = {module: imports_of(path) - {module} for module, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                circle = [*path[path.index(imported) :], imported] if imported in path else [module, imported]
                raise AssertionError(" -> ".join(circle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_subpackage_says_what_it_holds_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Layer" in doc and "mport" in doc, f"{init.relative_to(PACKAGE.parent)}: {doc!r}"
