"""The house's shape: the import graph of `pipeline` and `stages`, read with `ast` (every
import counts: top-level, deferred inside a function, and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "stages")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def graph() -> dict[str, set[str]]:
    known = modules()

    def target(name: str) -> str | None:
        name = name.removeprefix("tierup.")
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names = [f"{base}.{a.name}" for a in node.names]
            for n in names:
                t = target(n)
                if t is not None and t != mod:
                    edges[mod].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_a_planted_cycle_is_found() -> None:
    edges = graph()
    edges["stages.types"].add("pipeline.config")  # stages.types <- ... <- pipeline.config
    assert any("stages.types" in c and "pipeline.config" in c for c in cycles(edges))


def test_imports_only_go_down() -> None:
    edges = graph()
    upward = sorted(
        f"{m} -> {t}" for m, ts in edges.items() for t in ts
        if m.startswith("stages") and t.startswith("pipeline")
    )  # fmt: skip
    assert upward == []
    sandbox = sorted(
        f"{m} -> {t}"
        for m, ts in edges.items()
        for t in ts
        if t.startswith("pipeline.sandbox")
        and not m.startswith(("pipeline.sandbox", "pipeline.cli"))
    )
    assert sandbox == []
    back = sorted(
        f"{m} -> {t}" for m, ts in edges.items() for t in ts
        if m.startswith("pipeline.cli.") and t == "pipeline.cli" and m != "pipeline.cli.__main__"
    )  # fmt: skip
    assert back == []
