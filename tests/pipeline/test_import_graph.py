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


# -- pipeline/ never branches on a strategy's name ----------------------------------------------

# the names of the strategies stages.all_strategies builds in, and the stages' constants of them
STRATEGY_NAMES = frozenset(
    {"force-new-deployment", "task-definition", "cloudformation", "codedeploy", "ecs"}
)
NAME_CONSTANTS = frozenset({"FORCE_NEW_DEPLOYMENT", "TASK_DEFINITION", "STRATEGY"})
COLLECTIONS = frozenset({"frozenset", "set", "tuple", "list"})


def _names(node: ast.AST, consts: dict[str, frozenset[str]]) -> frozenset[str]:
    """The built-in strategy names an expression stands for (a literal, a collection of them,
    a module constant holding them, a stage's name constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return STRATEGY_NAMES & {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return frozenset().union(*(_names(e, consts) for e in node.elts))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        return _names(node.args[0], consts) if node.func.id in COLLECTIONS else frozenset()
    if isinstance(node, ast.Name):
        return consts.get(node.id, frozenset()) | (NAME_CONSTANTS & {node.id})
    if isinstance(node, ast.Attribute):
        return NAME_CONSTANTS & {node.attr}
    return frozenset()


def _strategy_like(node: ast.AST) -> bool:
    """An expression that is a strategy's name (``strategy``, ``plan.strategy``,
    ``config.strategy_for(env)``, ...): not a client's name, an action, a key."""
    return "strategy" in ast.unparse(node).lower()


def name_branches(path: Path) -> list[str]:
    """``file:line: code`` of each comparison of a strategy with a built-in strategy's name."""
    tree = ast.parse(path.read_text(), str(path))
    consts: dict[str, frozenset[str]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            found = _names(stmt.value, {})
            for t in targets:
                if isinstance(t, ast.Name) and found:
                    consts[t.id] = found
    hits: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            named = [o for o in operands if _names(o, consts)]
            if named and any(_strategy_like(o) for o in operands if o not in named):
                hits.append(node)
        elif isinstance(node, ast.Match) and _strategy_like(node.subject):
            for case in node.cases:
                for p in ast.walk(case.pattern):
                    if isinstance(p, ast.MatchValue) and _names(p.value, consts):
                        hits.append(p)
        elif isinstance(node, ast.Subscript) and _strategy_like(node.slice):
            keys = node.value.keys if isinstance(node.value, ast.Dict) else []
            if any(k is not None and _names(k, consts) for k in keys):
                hits.append(node)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [f"{rel}:{getattr(n, 'lineno', 0)}: {ast.unparse(n)}" for n in hits]


def test_pipeline_never_compares_a_strategy_with_a_built_in_name() -> None:
    """What pipeline/ needs of a strategy it asks the strategy (``stages.strategy.Capabilities``
    and its hooks): a strategy a library user registers then gets the same treatment."""
    files = sorted((ROOT / "pipeline").glob("*.py")) + sorted((ROOT / "pipeline/cli").glob("*.py"))
    assert files
    assert [hit for f in files for hit in name_branches(f)] == []


def test_a_name_branch_is_found_and_a_client_name_is_not(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "OWN = frozenset({'cloudformation', 'codedeploy'})\n"
        "UNVALIDATED = frozenset({'ecs'})\n"
        "def f(plan, config, env, service, clients, job, deploy_stage):\n"
        "    if plan.strategy in OWN: pass\n"
        "    if config.strategy_for(env) == 'ecs': pass\n"
        "    if plan.strategy == deploy_stage.FORCE_NEW_DEPLOYMENT: pass\n"
        "    x = {'ecs': 1, 'codedeploy': 2}[plan.strategy]\n"
        "    match plan.strategy:\n"
        "        case 'cloudformation': pass\n"
        "    if service in UNVALIDATED: pass\n"
        "    clients.aws('ecs', env)\n"
        "    if job.action == 'force-new-deployment': pass\n"
    )
    lines = sorted(int(h.split(": ", 1)[0].rsplit(":", 1)[1]) for h in name_branches(planted))
    assert lines == [4, 5, 6, 7, 9]


def test_every_import_uses_the_installed_names() -> None:
    """`pipeline` and `stages` install as `tierup.pipeline` and `tierup.stages`; a bare
    `pipeline` import would load a second copy of a module from the checkout."""
    bare: list[str] = []
    for folder in ("pipeline", "stages", "tests", "bench", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                bare += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {n}"
                    for n in names
                    if n.split(".")[0] in PACKAGES
                ]
    assert bare == []


def test_the_library_holds_no_exit_code() -> None:
    """Exit codes are the command line's (``pipeline.exit_codes``): a stage's error says only
    whether it is a refusal found before any write (``TierupError.refusal``)."""
    found: list[str] = []
    for path in sorted((ROOT / "stages").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if name in ("ExitCode", "exit_codes"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert found == []
