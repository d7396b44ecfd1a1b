"""The README's Python snippets run, and the signatures and defaults it shows are the code's."""

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import rmqm_callback
from rmqm_callback import score

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def _runnable_blocks() -> list[str]:
    return [block for block in _python_blocks() if _parses(block)]


def _signature_blocks() -> list[ast.FunctionDef]:
    """Blocks that show a signature, ``Name(a, b=1, *, c=2)``, read as ``def Name(...): ...``."""
    return [ast.parse(f"def {block.strip()}: ...").body[0] for block in _python_blocks() if not _parses(block)]


def test_readme_has_the_snippets_this_file_checks():
    assert len(_runnable_blocks()) >= 4
    assert [signature.name for signature in _signature_blocks()] == ["RMQMCallback"]


def test_every_runnable_readme_snippet_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # Trainer() may create lightning_logs/
    torch.manual_seed(0)
    namespace = {"model": nn.Sequential(nn.Flatten(), nn.Linear(64, 8)), "probe": torch.rand(12, 1, 8, 8)}
    for block in _runnable_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    darken = namespace["Darken"](levels=4)
    assert namespace["Darken"].pure
    assert torch.isfinite(score(namespace["model"], namespace["probe"], darken, batch_size=6)["RMQM"])


def test_readme_signatures_are_the_real_ones():
    for shown in _signature_blocks():
        real = inspect.signature(getattr(rmqm_callback, shown.name))
        arguments = shown.args
        names = [a.arg for a in arguments.args] + [a.arg for a in arguments.kwonlyargs]
        assert names == list(real.parameters), shown.name
        positional_defaults = dict(zip([a.arg for a in arguments.args][::-1], arguments.defaults[::-1]))
        keyword_defaults = {a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None}
        for name, default in {**positional_defaults, **keyword_defaults}.items():
            assert ast.literal_eval(default) == real.parameters[name].default, (shown.name, name)
            assert real.parameters[name].kind == (
                inspect.Parameter.KEYWORD_ONLY if name in keyword_defaults else inspect.Parameter.POSITIONAL_OR_KEYWORD
            ), (shown.name, name)


def test_readme_score_call_shows_the_real_defaults():
    calls = [
        node
        for block in _runnable_blocks()
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "score"
    ]
    assert calls
    parameters = inspect.signature(score).parameters
    for keyword in calls[0].keywords:
        assert ast.literal_eval(keyword.value) == parameters[keyword.arg].default, keyword.arg


# ------------------------------------------------------------------ the README's numbers come from committed results

ROOT = README.parent
#: What the committed scripts wrote: the examples' reports and the benchmarks' README (their printed tables).
RESULTS = ROOT / "examples" / "results"
RESULT_FILES = [*sorted(RESULTS.glob("*.md")), ROOT / "benchmarks" / "README.md"]
#: The README sections whose numbers are measurements.
MEASURED_SECTIONS = ("## What it is good for, measured", "## Results")
#: Numbers in those sections that are not measured here: the paper's result, the paper's year, and
#: learning rates written as 1e-2 (read as "1e" and "-2").
NOT_MEASURED = {"0.75", "2022", "2", "3"}
#: A number standing alone (not inside a name such as LeNet-5, 1-NN or d=64's letters).
NUMBER = re.compile(r"(?<![\w.\-/])[+-]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w\-])")


def _measured_text() -> str:
    text = README.read_text()
    parts = []
    for heading in MEASURED_SECTIONS:
        start = text.index(heading + "\n")
        following = text.find("\n## ", start + len(heading))
        parts.append(text[start : following if following > 0 else len(text)])
    return "\n".join(parts)


def _numbers(text: str) -> set[str]:
    return {match.lstrip("+-") for match in NUMBER.findall(text)}


def test_every_number_in_the_measured_sections_is_in_a_committed_results_file():
    corpus = set().union(*(_numbers(path.read_text()) for path in RESULT_FILES))  # whole numbers, not digits
    text = re.sub(r"```.*?```", "", _measured_text(), flags=re.S)  # code (thresholds, settings) is not a result
    text = re.sub(r"\(`[^`]*`\)|`[^`]*`", "", text)
    numbers = _numbers(text) - NOT_MEASURED
    assert len(numbers) > 60  # the sections are full of results: the check is reading them
    missing = sorted(numbers - corpus)
    assert not missing, f"numbers in the README's measured sections found in no results file: {missing}"
