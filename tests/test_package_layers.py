"""The packages form layers: no two packages import each other, directly or through others.

Every import counts (module level or inside a function, since both run), except those under
``if TYPE_CHECKING:`` (annotations only). A cycle means a layer that cannot be read, tested or
replaced on its own: adapters → services → records / store / engine / verify."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nextstat_pro"


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def package_of(parts: list[str]) -> str:
    return parts[0].removesuffix(".py")


def imports() -> dict[str, dict[str, list[str]]]:
    """package → imported package → where."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in SRC.rglob("*.py"):
        rel = list(path.relative_to(SRC).parts)
        here = package_of(rel)
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if node.__class__ is not ast.ImportFrom or node.lineno in skip:
                continue
            assert isinstance(node, ast.ImportFrom)
            if node.level:
                base = rel[:-1][: len(rel) - node.level] if node.level > 1 else rel[:-1]
                target = [*base, *(node.module or "").split(".")] if node.module else base
                names = [a.name for a in node.names] if not node.module else []
                for first in ([target[0]] if target and target[0] else names):
                    there = first.removesuffix(".py")
                    if there != here:
                        graph[here][there].append(f"{'/'.join(rel)}:{node.lineno}")
            elif node.module and node.module.startswith("nextstat_pro."):
                there = node.module.split(".")[1]
                if there != here:
                    graph[here][there].append(f"{'/'.join(rel)}:{node.lineno}")
    return graph


def test_no_package_imports_one_that_imports_it_back() -> None:
    graph = imports()
    cycles = []
    for a, targets in graph.items():
        for b in targets:
            if a < b and a in graph.get(b, {}):
                cycles.append(f"{a} <-> {b}: {graph[a][b][:2]} / {graph[b][a][:2]}")
    assert cycles == []


def test_no_longer_cycles_either() -> None:
    graph = {a: set(t) for a, t in imports().items()}
    seen: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node):], node]))
        if node in seen:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        seen.add(node)

    for start in sorted(graph):
        visit(start, [])
