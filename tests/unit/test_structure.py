"""The house rules of the package, checked on its source: imports go one way (nothing
below `api/` imports it; `protocol.py` imports nothing of ours), no import cycles, no
source file over 500 lines, and no test harness shipped inside the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pulse_stt"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the pulse_stt modules it imports (at any depth of its source)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # relative: resolve against this module's package
                    package = name.split(".")[: -node.level or None]
                    base = ".".join([*package, node.module])
                targets.update(f"{base}.{a.name}" for a in node.names)
                targets.add(base)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_layer_below_api_imports_it() -> None:
    below = ("audio", "stream", "engine", "text", "speakers", "store", "ops", "client")
    offenders = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.split(".")[1:2] and module.split(".")[1] in below
        for target in targets
        if target.startswith("pulse_stt.api")
    ]
    assert offenders == []


def test_the_vocabulary_imports_nothing_of_ours() -> None:
    assert import_graph()["pulse_stt.protocol"] == set()


def test_no_source_file_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := p.read_text().count("\n")) > MAX_LINES
    }
    assert long == {}


def test_no_test_harness_ships_in_the_package() -> None:
    names = {p.stem for p in PACKAGE.rglob("*.py")}
    assert not names & {"soak", "loadgen", "conftest", "hostile_inputs"}
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert "import pytest" not in sources and "from tests" not in sources


def test_only_the_edge_speaks_http() -> None:
    """Starlette and uvicorn are the edge's business: no layer below api/ builds HTTP."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer in ("api", "cli.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [
                f"{path.relative_to(PACKAGE)}: {n}"
                for n in names
                if n.split(".")[0] in ("starlette", "uvicorn")
            ]
    assert offenders == []
