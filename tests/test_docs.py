"""The README and the docs site: snippets run, imports and signatures are the code's, numbers are measured.

The site itself is built by ``mkdocs build --strict`` in ``.ci/run`` (no broken link, no missing reference).
"""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import rmqm_callback
from rmqm_callback import score

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]


def _blocks(path: Path, language: str = "python") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def _runnable_blocks(path: Path) -> list[str]:
    return [block for block in _blocks(path) if _parses(block)]


def _signature_blocks(path: Path) -> list[ast.FunctionDef]:
    """Blocks that show a signature, ``Name(a, b=1, *, c=2)``, read as ``def Name(...): ...``."""
    return [ast.parse(f"def {block.strip()}: ...").body[0] for block in _blocks(path) if not _parses(block)]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_pages_have_the_snippets_this_file_checks():
    assert len(_runnable_blocks(README)) >= 2
    assert sum(len(_runnable_blocks(page)) for page in PAGES) >= 6
    shown = [signature.name for page in PAGES for signature in _signature_blocks(page)]
    assert "RMQMCallback" in shown


@pytest.mark.parametrize("page", [page for page in PAGES if _runnable_blocks(page)], ids=_name)
def test_every_runnable_snippet_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # Trainer() may create lightning_logs/
    torch.manual_seed(0)
    namespace = {"model": nn.Sequential(nn.Flatten(), nn.Linear(64, 8)), "probe": torch.rand(12, 1, 8, 8)}
    for block in _runnable_blocks(page):  # the blocks of a page run in order, in one namespace
        exec(compile(block, str(page), "exec"), namespace)
    if "Darken" in namespace:
        darken = namespace["Darken"](levels=4)
        assert namespace["Darken"].pure
        assert torch.isfinite(score(namespace["model"], namespace["probe"], darken, batch_size=6)["RMQM"])


def _imports(source: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``from module import name`` and ``(module, None)`` for ``import module``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
    return found


def _shown_imports() -> list[tuple[str, str, str | None]]:
    shown = []
    for page in PAGES:
        for block in _blocks(page):
            for line in block.splitlines():  # fragments too: each import line on its own
                if re.match(r"\s*(from \S+ )?import ", line) and _parses(line.strip()):
                    shown.extend((_name(page), module, name) for module, name in _imports(line.strip()))
    return shown


def test_every_name_the_docs_import_imports_from_where_they_show_it():
    shown = [entry for entry in _shown_imports() if entry[1].split(".")[0] == "rmqm_callback"]
    assert len(shown) >= 10
    for page, module, name in shown:
        imported = importlib.import_module(module)
        if name is not None:
            assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (page, module, name)


def test_every_signature_shown_is_the_real_one():
    for page in PAGES:
        for shown in _signature_blocks(page):
            real = inspect.signature(getattr(rmqm_callback, shown.name))
            arguments = shown.args
            names = [a.arg for a in arguments.args] + [a.arg for a in arguments.kwonlyargs]
            assert names == list(real.parameters), (_name(page), shown.name)
            positional_defaults = dict(zip([a.arg for a in arguments.args][::-1], arguments.defaults[::-1]))
            keyword_defaults = {a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None}
            for name, default in {**positional_defaults, **keyword_defaults}.items():
                assert ast.literal_eval(default) == real.parameters[name].default, (_name(page), shown.name, name)
                keyword_only = name in keyword_defaults
                kind = inspect.Parameter.KEYWORD_ONLY if keyword_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
                assert real.parameters[name].kind == kind, (_name(page), shown.name, name)


def test_every_score_call_shown_uses_the_real_defaults():
    calls = [
        node
        for page in PAGES
        for block in _runnable_blocks(page)
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "score" and node.keywords
    ]
    assert calls
    parameters = inspect.signature(score).parameters
    for keyword in calls[0].keywords:
        assert ast.literal_eval(keyword.value) == parameters[keyword.arg].default, keyword.arg


# ------------------------------------------------------------------ the numbers come from committed results

#: What the committed scripts wrote: the examples' reports, the benchmarks' README (their printed tables) and the
#: benchmarks' saved outputs.
RESULT_FILES = [
    *sorted((ROOT / "examples" / "results").glob("*.md")),
    *sorted((ROOT / "benchmarks").glob("*.md")),
    *sorted((ROOT / "benchmarks").glob("results_*.txt")),
]
#: The parts that state measurements: the README's measured section and the docs pages of results and costs.
MEASURED = {
    README: ("## What it is good for, measured", "## Choosing a checkpoint"),
    DOCS / "guide" / "good-for.md": None,
    DOCS / "guide" / "collapse-alarm.md": None,
    DOCS / "guide" / "cost.md": None,
    DOCS / "guide" / "choosing-checkpoints.md": None,
    **{page: None for page in sorted((DOCS / "results").glob("*.md"))},
}
#: Numbers in those parts that are not measured here: the paper's result, the paper's year, and
#: learning rates written as 1e-2 (read as "1e" and "-2").
NOT_MEASURED = {"0.75", "2022", "2", "3"}
#: A number standing alone (not inside a name such as LeNet-5, 1-NN or d=64's letters).
NUMBER = re.compile(r"(?<![\w.\-/])[+-]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w\-])")


def _measured_text(page: Path, headings: tuple[str, ...] | None) -> str:
    text = page.read_text()
    if headings is None:
        return text
    parts = []
    for heading in headings:
        start = text.index(heading + "\n")
        following = text.find("\n## ", start + len(heading))
        parts.append(text[start : following if following > 0 else len(text)])
    return "\n".join(parts)


def _numbers(text: str) -> set[str]:
    return {match.lstrip("+-") for match in NUMBER.findall(text)}


@pytest.mark.parametrize("page", list(MEASURED), ids=_name)
def test_every_number_stated_as_measured_is_in_a_committed_results_file(page):
    corpus = set().union(*(_numbers(path.read_text()) for path in RESULT_FILES))  # whole numbers, not digits
    text = re.sub(r"```.*?```", "", _measured_text(page, MEASURED[page]), flags=re.S)  # code is not a result
    text = re.sub(r"\(`[^`]*`\)|`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    numbers = _numbers(text) - NOT_MEASURED
    assert numbers, "the check reads no number here"
    missing = sorted(numbers - corpus)
    assert not missing, f"numbers in {_name(page)} found in no results file: {missing}"


def test_every_alteration_signature_written_inline_is_the_real_one():
    """Inline ``GaussianNoise(...)`` / ``PGD(...)`` signatures in the prose name every argument the class takes."""
    for page in PAGES:
        for name, arguments in re.findall(r"`(GaussianNoise|PGD)\(([a-z_]+=[^`]*)\)`", page.read_text()):
            shown = [part.split("=")[0].strip() for part in re.split(r",\s*(?![^()]*\))", arguments)]
            real = list(inspect.signature(getattr(rmqm_callback, name)).parameters)
            if len(shown) > 2:  # a full signature, not a call with one or two settings
                assert shown == real, (_name(page), name, shown, real)
