"""The package's layering, read from the source with ``ast`` and enforced arrow by arrow.

Each subpackage and top-level module of ``convscope`` has a level; a module may import only modules of its own
unit (the same subpackage, which must then form no cycle) or of a LOWER level. An import of a same-level peer
or of anything above is a failure, and so is any cycle. From the top:

    convscope, __main__           the public facade (training API imported on first use); ``python -m``
    cli, widgets                  one module per command: parse, call one library function, print; the
                                  Jupyter widgets (anywidget) on the web app's computations
    web, experiments, benchmark, tune   the browser app and report; experiments combining training and
                                  inspection; hyperparameter search (Optuna) over training runs
    training                      the loop, engines, config, checkpoints; a run read back as a Run
    inspect, matrix               tools that look inside any nn.Module or run; model-walking matrix reports
    runs, distributed             the run directory (layout, reader/writer, lock, JSON readers, callback
                                  protocol); process groups and sharding
    models, reference             the zoo, weights, layer resolution, probes; the NumPy reference layers
    conv, viz                     pure conv arithmetic (geometry, conv_matrix, operator, pooling); figures
    data, configs                 datasets, loaders, the image -> model input path; the typed configs of
                                  refine, visualize and explain (fields that drive checks and flags)
    _atomic, _check, _result, _lazy, _progress   atomic writes, validators, result dataclasses, lazy names,
                                  progress of long commands
    errors, _version, _json, _cpus, _signals   the exception types, the version, the strict JSON reader, the CPUs
                                  a process may use and how busy they are (stdlib only: _check bounds --threads by
                                  it), Ctrl-C and SIGTERM as a flag (the CLI holds them while torch loads)

Every kind of import counts: at module level, inside a function (a lazy import runs as surely, only later), and
the implicit ones, since importing ``convscope.a.b`` first runs ``convscope/a/__init__.py`` (so that file's
imports are the importer's too). ``convscope/__init__.py`` runs before any module of the package, so at import
time it may load only the lowest level; the training API it offers (``convscope.train``, ``load_run``) is a
function-level import from the top, made on first use. The packages that name their contents lazily
(``lazy_exports`` of convscope/_lazy.py, so that the CLI's parser loads no torch) count as importing each module
named there. Imports under ``if TYPE_CHECKING:`` never run and are not counted. The CLI's lazy imports need no
exception: ``cli`` sits below only the facade.

Training sits above inspect (not beside it) because ``track_sparsity`` makes the loop attach
``inspect.sparsity.SparsityTracker``; inspect never imports training (it opens runs through ``runs``).
"""

from __future__ import annotations

import ast
import functools
import textwrap
from pathlib import Path

import pytest


PKG = Path(__file__).resolve().parents[1] / "convscope"

# top to bottom; each tuple is one level, its names the units (subpackages and top-level modules) on it
LEVELS: list[tuple[str, ...]] = [
    ("convscope", "__main__"),
    ("cli", "widgets"),
    ("web", "experiments", "benchmark", "tune"),
    ("training",),
    ("inspect", "matrix"),
    ("runs", "distributed"),
    ("models", "reference"),
    ("conv", "viz"),
    ("data", "configs"),
    ("_atomic", "_check", "_result", "_lazy", "_progress"),
    ("errors", "_version", "_json", "_cpus", "_signals"),
]
LEVEL = {unit: len(LEVELS) - i for i, units in enumerate(LEVELS) for unit in units}   # higher number: higher level

MODULE, FUNCTION, IMPLICIT = "at module level", "inside a function", "implicitly (package __init__)"
RANK = {MODULE: 0, FUNCTION: 1, IMPLICIT: 2}


def unit(module: str) -> str:
    """``convscope.inspect.hooks`` -> ``inspect``; ``convscope`` -> ``convscope``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path, pkg: Path) -> str:
    parts = path.relative_to(pkg.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST):
    """(node, inside_a_function) for every import that can run: those under ``if TYPE_CHECKING:`` never do."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, lazy
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend((c, lazy) for c in child.orelse)
                continue
            stack.append((child, lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))))


def _lazy_targets(path: Path) -> list[str]:
    """The modules a ``lazy_exports(__name__, {name: ".module[:attr]"})`` call will import, as written."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            out += [v.value.partition(":")[0] for v in node.args[1].values]
    return out


def _resolve(package: str, relative: str) -> str:
    """``..runs.callbacks`` seen from ``convscope.training`` -> ``convscope.runs.callbacks``."""
    level = len(relative) - len(relative.lstrip("."))
    base = package.split(".")[:len(package.split(".")) - level + 1]
    return ".".join(base + [relative.lstrip(".")] if relative.lstrip(".") else base)


@functools.cache
def import_graph(pkg: Path = PKG) -> dict[str, dict[str, str]]:
    """module -> {module it imports: how}, over every module of the package at ``pkg``. ``how`` is MODULE,
    FUNCTION or IMPLICIT (a package whose __init__ runs because a module inside it is imported); a module's
    own enclosing packages are not counted (Python has run them before the module itself)."""
    top = pkg.name
    files = {_module_name(p, pkg): p for p in sorted(pkg.rglob("*.py"))}
    graph: dict[str, dict[str, str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}  # enclosing packages
        edges: dict[str, str] = {}

        def add(target: str, how: str) -> None:
            if target == name or target not in files:
                return
            if RANK[how] < RANK.get(edges.get(target), len(RANK)):   # module level > in a function > implicit
                edges[target] = how
            for i in range(1, target.count(".") + 1):       # convscope.a.b runs convscope/__init__, convscope/a/...
                parent = ".".join(target.split(".")[:i])
                if parent != top and parent not in own and parent != name and parent not in edges:
                    edges[parent] = IMPLICIT   # a package cannot be in `edges` with a weaker reason than this

        for node, lazy in _imports(ast.parse(path.read_text())):
            how = FUNCTION if lazy else MODULE
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        add(alias.name, how)
                continue
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue
            for alias in node.names:   # `from pkg import submodule` imports the submodule (after pkg's __init__)
                sub = f"{target}.{alias.name}"
                add(sub if sub in files else target, how)
        for module in _lazy_targets(path):   # a package's names imported on first use (convscope._lazy)
            add(_resolve(package, module), FUNCTION)
        graph[name] = edges
    return graph


def layering_violations(graph: dict[str, dict[str, str]], level: dict[str, int] = LEVEL) -> list[str]:
    """Every arrow that points to a same-level peer or upward, and every module without a level."""
    bad = []
    lowest = min(level.values())
    for m in sorted(graph):
        if unit(m) not in level:
            bad.append(f"{m}: its unit {unit(m)!r} has no level; add it to LEVELS in tests/test_imports.py")
            continue
        for n, how in sorted(graph[m].items()):
            if unit(n) not in level:
                continue   # reported as a module of its own
            if m == unit(m) and "." not in m and how == MODULE and level[unit(n)] != lowest:
                # the root package's __init__ runs before every module of the package: at import time it may
                # load nothing above the lowest level
                bad.append(f"{m} -> {n} ({how}): the package's __init__ runs before every module in it; import "
                           f"{unit(n)} on first use (in a function), not at import time")
            elif unit(m) != unit(n) and level[unit(n)] >= level[unit(m)]:
                where = "a same-level peer" if level[unit(n)] == level[unit(m)] else "upward"
                bad.append(f"{m} -> {n} ({how}): {unit(m)} imports {unit(n)}, {where}")
    return bad


def find_cycle(graph: dict[str, dict[str, str]] | dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
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


def test_every_arrow_points_down():
    bad = layering_violations(import_graph())
    assert not bad, "imports against the declared order:\n  " + "\n  ".join(bad)


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_docstring_states_the_levels_the_test_enforces():
    table = [line.strip().split("   ")[0] for line in __doc__.splitlines() if line.startswith("    ") and
             not line.startswith("     ")]
    assert table == [", ".join(units) for units in LEVELS]


def test_every_unit_in_the_table_exists():
    """A level for a unit that does not exist is a stale table (``_check`` is the validators' module)."""
    units = {unit(m) for m in import_graph()}
    assert {u for units_ in LEVELS for u in units_} - units <= {"_check"}


def test_the_walk_sees_real_edges_of_every_kind():
    graph = import_graph()
    assert graph["convscope.training.loop"]["convscope.training.engines"] == MODULE          # the engine factory
    assert graph["convscope.training.engines"]["convscope.training.engines.torch"] == FUNCTION  # made on use
    assert graph["convscope.training.engines.torch"].get("convscope.training.engines") is None  # its own package
    assert graph["convscope.training.loop"]["convscope.inspect.sparsity"] == FUNCTION       # track_sparsity
    assert graph["convscope"]["convscope.training"] == FUNCTION                            # the lazy facade
    assert "convscope.training.config" not in graph["convscope.runs.callbacks"]             # TYPE_CHECKING only
    assert graph["convscope.training"]["convscope.runs.callbacks"] == FUNCTION             # a lazy package name


# ---- the checker itself, on synthetic packages: it must catch what it claims to catch -----------------------------

def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "convscope"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return pkg


SYNTHETIC_LEVELS = {"convscope": 4, "training": 3, "inspect": 2, "matrix": 2, "data": 1, "errors": 0}


def test_the_checker_catches_an_upward_arrow_at_module_level(tmp_path):
    pkg = _package(tmp_path, {"data/load.py": "from ..training.loop import run\n", "training/loop.py": "run = 1\n"})
    bad = layering_violations(import_graph(pkg), SYNTHETIC_LEVELS)
    assert bad == ["convscope.data.load -> convscope.training (implicitly (package __init__)): data imports "
                   "training, upward",
                   "convscope.data.load -> convscope.training.loop (at module level): data imports training, upward"]


def test_the_checker_catches_a_function_level_arrow_and_a_peer(tmp_path):
    pkg = _package(tmp_path, {"inspect/target.py": "def f():\n    import convscope.matrix.report as r\n    return r\n",
                              "matrix/report.py": "x = 1\n", "training/loop.py": "def g():\n    from ..data import x\n",
                              "data/x.py": ""})
    bad = layering_violations(import_graph(pkg), SYNTHETIC_LEVELS)
    assert "convscope.inspect.target -> convscope.matrix.report (inside a function): inspect imports matrix, " \
           "a same-level peer" in bad
    assert not [b for b in bad if b.startswith("convscope.training")]      # downward, also in a function: fine


def test_the_checker_counts_a_package_init_as_the_importers_import(tmp_path):
    """inspect imports only data.x, but data/__init__ runs first and imports training: that arrow is inspect's too
    (reported on data's __init__, and the implicit edge inspect -> data is what pulls it in)."""
    pkg = _package(tmp_path, {"inspect/tool.py": "from convscope.data.x import y\n", "data/x.py": "y = 1\n",
                              "data/__init__.py": "from ..training import z\n", "training/z.py": ""})
    graph = import_graph(pkg)
    assert graph["convscope.inspect.tool"] == {"convscope.data.x": MODULE, "convscope.data": IMPLICIT}
    assert "convscope.data -> convscope.training.z (at module level): data imports training, upward" in \
           layering_violations(graph, SYNTHETIC_LEVELS)


def test_the_checker_holds_the_root_init_to_the_lowest_level(tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "from .errors import E\nfrom .training import train\n"
                                             "def __getattr__(n):\n    from .inspect import t\n",
                              "errors.py": "E = 1\n", "training/__init__.py": "train = 1\n", "inspect/t.py": ""})
    bad = layering_violations(import_graph(pkg), SYNTHETIC_LEVELS)
    assert [b.split(" (")[0] for b in bad] == ["convscope -> convscope.training"]


def test_the_checker_ignores_type_checking_imports_and_reports_units_without_a_level(tmp_path):
    pkg = _package(tmp_path, {"data/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from ..training import loop\n", "training/loop.py": "",
                              "newpkg/b.py": ""})
    bad = layering_violations(import_graph(pkg), SYNTHETIC_LEVELS)
    assert bad == ["convscope.newpkg: its unit 'newpkg' has no level; add it to LEVELS in tests/test_imports.py",
                   "convscope.newpkg.b: its unit 'newpkg' has no level; add it to LEVELS in tests/test_imports.py"]


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


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


def test_importing_the_lower_layers_does_not_load_the_layers_above():
    """The implicit __init__ imports are real: importing convscope and its low layers runs nothing above them."""
    import subprocess
    import sys

    code = ("import sys, convscope, convscope.data, convscope.conv, convscope.runs\n"
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('convscope.')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout
    loaded = set(eval(out))
    assert loaded <= {"data", "conv", "runs", "models", "errors", "_atomic", "_check", "_version", "_result",
                      "_lazy", "_cpus"}, loaded


HEAVY = ("torch", "numpy", "matplotlib", "fastapi", "captum", "PIL", "scipy")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["explain", "--help"], ["serve", "--help"],
                                  ["export", "--help"], ["data", "list"], ["models"]])
def test_the_cli_answers_help_and_listings_without_torch(argv):
    """The parser of every command, ``data list`` and ``models`` load no heavy library (issue 26): what they
    print needs none, and importing torch alone takes seconds on a loaded laptop."""
    import subprocess
    import sys

    code = ("import sys\nfrom convscope.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=PKG.parent)
    assert r.stdout.strip(), r.stderr
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr
