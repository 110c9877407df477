"""The package's import graph, read from the source with ast: no cycle, arrows one way (inspect never imports
training), and no test switch read from the environment."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "convscope"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (imports for type checkers only never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    """module -> convscope modules it imports (at module level or inside functions)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.split(".")[0] == "convscope"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "convscope":
                    continue
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in files else target)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = import_graph()
    assert "convscope.training.engines" in graph["convscope.training.loop"]     # the walk sees real edges
    assert "convscope.models.weights" in graph["convscope.inspect.target"]            # imports inside functions too


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# the one edge left: inspect.target.from_run opens a run directory with convscope.training.load_run (the run
# directory's reader lives in training/rundir.py); the inspection tools themselves import nothing from training
KNOWN = {"convscope.inspect.target -> convscope.training"}


@pytest.mark.parametrize("low, high", [("convscope.inspect", "convscope.training"),
                                       ("convscope.models", "convscope.training"),
                                       ("convscope.data", "convscope.training"),
                                       ("convscope.training", "convscope.cli")])
def test_arrows_point_one_way(low, high):
    graph = import_graph()
    bad = sorted(f"{m} -> {n}" for m, ns in graph.items() if m.startswith(low) for n in ns if n.startswith(high))
    assert not set(bad) - KNOWN, bad


def test_no_test_switch_is_read_from_the_environment():
    reads = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Call, ast.Subscript)):
                text = ast.unparse(node)
                if "environ" in text or "getenv" in text:
                    reads += [f"{path.name}: {text}" for c in ast.walk(node)
                              if isinstance(c, ast.Constant) and isinstance(c.value, str)
                              and ("FAULT" in c.value.upper() or "TEST" in c.value.upper())]
    assert not reads, reads
