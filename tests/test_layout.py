"""The house rules of the package, read from its own imports.

Stages are layered: a module may import its own stage and earlier ones, never a later one
(formats never import consolidation, nothing but ``cli`` imports ``cli``), and modules never
import each other in a cycle. The face (``gt_toolkit/__init__.py``) loads lazily, so it is left
out: a stage reaching the face would import nothing heavy either.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gt_toolkit"

# Base modules first; stages of equal rank are peers and may not import each other.
RANK = {
    "errors": 0,
    "types": 0,
    "progress": 0,
    "text": 0,
    "storage": 1,
    "templating": 1,
    "formats": 2,
    "consolidation": 3,
    "handlers": 4,
    "worker_ui": 4,
    "convert": 4,
    "evaluation": 4,
    "sagemaker": 5,
    "testing": 6,
    "cli": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every ``gt_toolkit`` module ``path`` imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (n for n in names if n == "gt_toolkit" or n.startswith("gt_toolkit."))


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {
        _module_name(path): set(_imports(path))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__main__.py"
    }


def _stage(module: str) -> str:
    return module.split(".")[1]


def test_every_stage_has_a_rank() -> None:
    stages = {_stage(m) for m in _graph() if m != "gt_toolkit"}
    assert stages == set(RANK)


def test_no_module_imports_a_later_or_peer_stage() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module != "gt_toolkit"
        for target in targets
        if target != "gt_toolkit"
        and _stage(target) != _stage(module)
        and RANK[_stage(target)] >= RANK[_stage(module)]
    ]
    assert wrong == []


def test_only_cli_imports_cli() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module != "gt_toolkit" and _stage(module) != "cli"
        for target in targets
        if target.startswith("gt_toolkit.cli")
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {
        m: {t for t in ts if t in _graph() and t != "gt_toolkit"} for m, ts in _graph().items()
    }
    # a package's __init__ imports its own modules, which import the package: not a cycle
    # of code, just Python's package loading, so edges into a module's own package are left out
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("gt_toolkit.formats.manifest", "gt_toolkit.consolidation.engine"),
        ("gt_toolkit.storage.s3", "gt_toolkit.cli.options"),
        ("gt_toolkit.convert.coco", "gt_toolkit.evaluation.metrics"),
    ],
)
def test_the_rank_rule_would_catch_a_wrong_import(module: str, target: str) -> None:
    """The checks above can fail: each of these edges breaks the rule."""
    source, dest = _stage(module), _stage(target)
    assert source != dest and RANK[dest] >= RANK[source]
