"""phnn's modules import each other one way: no cycles among their imports (an import inside a
function, which hides a cycle from Python, counts too), and none of them loads code by name
(`importlib`, `__import__`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "phnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The phnn modules a module imports, at its top level or inside its functions."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in known:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found |= submodules or {node.module}
            if len(submodules) < len(node.names):
                found.add(node.module)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    trees = modules()
    graph = {name: imports(tree, set(trees)) - {name} for name, tree in trees.items()}
    assert graph["phnn.cli"] and graph["phnn.tasks.base"]  # the graph is read at all
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_code_is_loaded_by_name() -> None:
    loaders = [f"{name}:{node.lineno}" for name, tree in modules().items() for node in ast.walk(tree)
               if (isinstance(node, ast.Import) and any(a.name == "importlib" for a in node.names))
               or (isinstance(node, ast.ImportFrom) and node.module == "importlib")
               or (isinstance(node, ast.Name) and node.id == "__import__")]
    assert not loaders
