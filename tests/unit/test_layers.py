"""course_lib's shape: layers that import downwards (``lint-imports`` checks the contract in
pyproject.toml), no import cycles between modules, no private names across modules."""
from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

LIB = Path(__file__).resolve().parents[2] / "course_lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module_name(p) for p in LIB.rglob("*.py"))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("course_lib")
    # A package's __init__ re-exporting its own modules is not a cycle of ideas.
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m)
                 if not m.startswith(i + ".")}
             for m in graph.modules}
    assert _cycles(edges) == []


def _private_uses(path: Path, own: str | None = None) -> list[str]:
    """``from course_lib.x import _name`` and ``alias._name`` for a course_lib module alias,
    in the module ``own`` (default: the one at ``path``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = own or _module_name(path)
    aliases: set[str] = set()
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib"):
            for name in node.names:
                if name.name.startswith("_") and not name.name.startswith("__") \
                        and node.module != own:
                    uses.append(f"{node.module}.{name.name}")
                if f"{node.module}.{name.name}" in MODULES:
                    aliases.add(name.asname or name.name)
        elif isinstance(node, ast.Import):
            for name in node.names:
                if name.name.startswith("course_lib") and name.asname:
                    aliases.add(name.asname)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            uses.append(f"{node.value.id}.{node.attr}")
    return uses


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: p.stem)
def test_no_private_name_crosses_a_module(path):
    assert _private_uses(path) == []


def test_the_private_name_finder_finds_both_kinds(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("from course_lib.scaling.runs import _Hidden\n"
                    "from course_lib.core import atomic\n"
                    "atomic._secret()\natomic.__doc__\n")
    assert _private_uses(path, own="course_lib.probe") == [
        "course_lib.scaling.runs._Hidden", "atomic._secret"]
