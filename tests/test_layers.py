"""The layout's rules (DESIGN.md): which layer may import which, and no import cycle between modules.

Read from the source with :mod:`ast`, so an import hidden inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "claude_signal"

# layer → the layers it may import (itself always allowed)
ALLOWED = {
    "edge": {"wire", "config"},
    "wire": {"config"},
    "rules": set(),
    "claude": set(),
}
NEVER_FROM_CORE = {"worker", "ops", "celery"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every claude_signal/tasks module ``path`` imports (``from a import b`` counts ``a.b`` when that is a
    module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    known = modules()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        elif top_level_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
    return {name for name in found if name.split(".")[0] in {"claude_signal", "tasks"}}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("name", sorted(n for n in modules() if layer(n) in ALLOWED))
def test_lower_layers_import_only_what_they_may(name: str) -> None:
    own = layer(name)
    bad = {m for m in imports(modules()[name])
           if m.startswith("tasks") or (layer(m) != own and layer(m) not in ALLOWED[own])}
    assert not bad, f"{name} ({own}) may not import {sorted(bad)}"


def test_core_never_reaches_up_and_nothing_imports_tasks() -> None:
    for name, path in modules().items():
        found = imports(path)
        assert not [m for m in found if m.startswith("tasks")], f"{name} imports tasks"
        if layer(name) == "core":
            assert not [m for m in found if layer(m) in NEVER_FROM_CORE], f"{name} imports {sorted(found)}"


def test_no_import_cycle() -> None:
    known = modules()
    graph = {name: {m for m in imports(path) if m in known and m != name}
             for name, path in known.items()}
    # A package's __init__ is imported with any of its modules; its own imports are edges too.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_modules_stay_small_and_tasks_thin() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
    fat = {p.name: n for p in (ROOT / "tasks").glob("*.py") if (n := len(p.read_text().splitlines())) >= 80}
    assert not fat, f"task modules of 80 lines or more: {fat}"
