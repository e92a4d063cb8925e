"""The package's shape: no import cycle, layers only import downwards, ``agentsim.testing`` is a
leaf, and no module grows past ~400 lines.

Imports are read from the source (``ast``), so an import inside a function or under
``TYPE_CHECKING`` counts as much as one at the top: the graph is what the code depends on,
not only what Python happens to load first. Each checker is also run on a small package
written to ``tmp_path`` with one planted violation, so every check is seen to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

import agentsim

ROOT = Path(agentsim.__file__).resolve().parent

# ARCHITECTURE.md §10, bottom to top: a module may import its own layer and the ones below.
LAYERS: dict[str, int] = {
    "agentsim": 0,  # the package root: the version, nothing else
    "agentsim.wire": 0,
    "agentsim.chat": 0,
    "agentsim.failures": 0,
    "agentsim.journal": 0,
    "agentsim.util": 0,
    "agentsim.logs": 0,
    "agentsim.energy": 0,  # RAPL / NVML counters: the standard library only
    "agentsim.scenario": 0,  # schema + errors: import nothing of the runtime
    "agentsim.bus": 1,
    "agentsim.engines": 1,
    "agentsim.tools": 1,
    "agentsim.tasks": 1,
    "agentsim.agent": 2,
    "agentsim.protocols": 3,
    "agentsim.environments": 3,
    "agentsim.run": 4,
    "agentsim.scenario.validate": 4,  # consults engines, protocols, faults, environments
    "agentsim.scenario.agents": 4,  # validate's checks of one agent: engines, tools
    "agentsim.scenario.sweep": 4,
    "agentsim.report": 5,
    "agentsim.cli": 6,
    "agentsim.__main__": 6,
    "agentsim.testing": 7,
}
LAYER_NAMES = ["bottom", "bus/engines/tools/tasks", "agent", "protocols/environments"]
LAYER_NAMES += ["run", "report", "cli", "testing"]

MAX_LINES = 400
# Modules allowed past MAX_LINES, each with its reason and its own ceiling.
OVERSIZE: dict[str, tuple[int, str]] = {
    "engines/mlc/kernels.py": (2000, "kernel definitions (TVM TIR)"),
    "engines/mlc/attention.py": (2000, "kernel definitions (TVM TIR)"),
    "agent/core.py": (420, "402 lines; being reworked by the identity issue, split it there"),
    "tasks/synth.py": (420, "404 lines, most of them word lists for the generated tasks"),
}

Graph = dict[str, set[str]]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path, package: str) -> Graph:
    """Module → the package modules it imports anywhere in its source.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (and ``a``), so those count too,
    except the packages the importing module itself lives in (they are already loading).
    """
    files = module_files(root, package)
    graph: Graph = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = mod if is_pkg else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [base]
                names += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
            for name in names:
                if name == package or name.startswith(package + "."):
                    targets.update(n for n in [*_parents(name), name] if n in files)
        own = {*_parents(mod), mod}
        graph[mod] = {t for t in targets if t not in own}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def layer_of(mod: str, layers: Mapping[str, int]) -> int | None:
    """The layer of the longest prefix of ``mod`` that ``layers`` names; the root package's
    entry covers the root ``__init__`` only, so a new top-level module must be placed."""
    parts = mod.split(".")
    if mod == parts[0]:
        return layers.get(mod)
    for i in range(len(parts), 1, -1):
        if (prefix := ".".join(parts[:i])) in layers:
            return layers[prefix]
    return None


def upward_imports(graph: Graph, layers: Mapping[str, int]) -> list[str]:
    """Every import of a higher layer by a lower one (and modules with no layer)."""
    found: list[str] = []
    for mod, targets in sorted(graph.items()):
        mine = layer_of(mod, layers)
        if mine is None:
            found.append(f"{mod} has no layer: add it to LAYERS")
            continue
        for t in sorted(targets):
            theirs = layer_of(t, layers)
            if theirs is not None and theirs > mine:
                found.append(f"{mod} ({LAYER_NAMES[mine]}) imports {t} ({LAYER_NAMES[theirs]})")
    return found


def importers_of(graph: Graph, leaf: str) -> list[str]:
    return sorted(m for m, targets in graph.items() if leaf in targets and m != leaf)


def oversized(root: Path, limit: int, allowed: Mapping[str, tuple[int, str]]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        cap = allowed.get(rel, (limit, ""))[0]
        if n > cap:
            found.append(f"{rel}: {n} lines (limit {cap})")
    return found


# ----- the package -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT, "agentsim")


def test_the_package_has_no_import_cycle(graph: Graph) -> None:
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_lower_layers_never_import_higher_ones(graph: Graph) -> None:
    found = upward_imports(graph, LAYERS)
    assert not found, "\n".join(found)


def test_product_code_never_imports_agentsim_testing(graph: Graph) -> None:
    found = importers_of(graph, "agentsim.testing")
    assert not found, f"import agentsim.testing (a leaf): {', '.join(found)}"


def test_the_scenario_schema_imports_nothing_of_the_runtime(graph: Graph) -> None:
    for mod in ("agentsim.scenario", "agentsim.scenario.schema", "agentsim.scenario.errors"):
        assert graph[mod] <= {"agentsim.scenario.schema", "agentsim.scenario.errors"}, mod


def test_no_module_is_over_400_lines_except_kernel_definitions() -> None:
    found = oversized(ROOT, MAX_LINES, OVERSIZE)
    assert not found, "\n".join(found)
    for rel in OVERSIZE:
        assert (ROOT / rel).is_file(), f"OVERSIZE names a missing module {rel}"


def test_the_graph_sees_imports_inside_functions(graph: Graph) -> None:
    # cli/main.py imports each subcommand inside a function only.
    assert {"agentsim.cli.run", "agentsim.cli.agent"} <= graph["agentsim.cli.main"]


# ----- each checker fails on a planted violation -------------------------------------------
def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/a.py": "from pkg.high import b\n",
            "high/__init__.py": "",
            "high/b.py": "def f():\n    from pkg.low.a import x\n",
        },
    )
    g = import_graph(root, "pkg")
    assert find_cycle(g) == ["pkg.high.b", "pkg.low.a", "pkg.high.b"]
    assert find_cycle({"pkg.x": {"pkg.y"}, "pkg.y": set()}) is None


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "s/__init__.py": "from pkg.s.v import check\n",
            "s/v.py": "import pkg.p\n",
            "p.py": "from pkg.s.schema import S\n",
            "s/schema.py": "",
        },
    )
    cycle = find_cycle(import_graph(root, "pkg"))
    assert cycle is not None and {"pkg.s", "pkg.s.v", "pkg.p"} <= set(cycle)


def test_an_upward_import_and_a_testing_import_are_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "wire.py": "",
            "run/__init__.py": "",
            "run/runner.py": "from pkg import wire\nif False:\n    from pkg.report import html\n",
            "report/__init__.py": "",
            "report/html.py": "from pkg.run import runner\n",
            "testing.py": "",
            "explore.py": "from . import testing\n",
        },
    )
    layers = {"pkg": 0, "pkg.wire": 0, "pkg.run": 4, "pkg.report": 5, "pkg.testing": 7}
    g = import_graph(root, "pkg")
    assert upward_imports(g, layers) == [
        "pkg.explore has no layer: add it to LAYERS",
        "pkg.run.runner (run) imports pkg.report (report)",
        "pkg.run.runner (run) imports pkg.report.html (report)",
    ]
    assert importers_of(g, "pkg.testing") == ["pkg.explore"]


def test_a_long_module_is_found_and_an_allowed_one_has_its_own_ceiling(tmp_path: Path) -> None:
    root = _package(tmp_path, {"big.py": "x = 1\n" * 401, "kern.py": "x = 1\n" * 500})
    assert oversized(root, 400, {"kern.py": (600, "kernels")}) == ["big.py: 401 lines (limit 400)"]
    assert (
        oversized(root, 400, {"kern.py": (450, "kernels")})[1] == "kern.py: 500 lines (limit 450)"
    )
