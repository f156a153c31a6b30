"""The import graph of simenv/, agents/ and experiments/: no cycles, and the layers point one way.

A source scan with ``ast``: every ``import`` and ``from ... import`` of a
module, at module level and inside functions alike (a function-level import
still ties the two modules together, it only postpones the failure), with
relative imports resolved. ``from pkg import name`` is an edge to the
submodule ``pkg.name`` when one exists, else to ``pkg``; ``import pkg.sub``
is an edge to ``pkg.sub``. Imports under ``if TYPE_CHECKING:`` never run and
are left out.

Importing ``pkg.sub`` also runs ``pkg/__init__`` first; that implied edge
``-> pkg`` is *not* counted. Python starts a package's ``__init__`` before any
of its submodules, so a package whose ``__init__`` imports its own submodules
(``simenv`` re-exporting ``simenv.batch``) is not a cycle unless a submodule
reads a name back from the package, which is an explicit ``from pkg import
name`` or ``import pkg`` edge, and counted.

Two rules:

- no strongly connected component of more than one module;
- ``simenv`` imports nothing of ``agents`` or ``experiments``, ``agents``
  nothing of ``experiments``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simenv", "agents", "experiments")
#: package -> packages it must not import (the layers, lowest first)
FORBIDDEN = {"simenv": ("agents", "experiments"), "agents": ("experiments",)}

Edge = tuple[str, str, int]  # (importer, imported, line)


def module_files(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages`` under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is one of ``modules``."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, modules: dict[str, Path]) -> list[Edge]:
    """The edges from ``module`` to the other scanned modules it imports."""
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges = []
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if alias.name != "*" and sub in modules else base)
        for target in targets:
            known = _known_prefix(target, modules)
            if known is not None and known != module:
                edges.append((module, known, node.lineno))
    return edges


def import_graph() -> tuple[dict[str, set[str]], list[Edge]]:
    modules = module_files()
    edges = [e for m in modules for e in imports_of(m, modules)]
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for src, dst, _ in edges:
        graph[src].add(dst)
    return graph, edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph``, each sorted, larger than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], edges: list[Edge]) -> str:
    inside = set(component)
    lines = [f"cycle among {', '.join(component)}:"]
    for src, dst, line in sorted(set(edges)):
        if src in inside and dst in inside:
            lines.append(f"    {src} (line {line}) imports {dst}")
    return "\n".join(lines)


def test_no_import_cycles():
    graph, edges = import_graph()
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c, edges) for c in cycles)


def test_lower_layers_import_nothing_from_higher_ones():
    _, edges = import_graph()
    wrong = [
        f"{src} (line {line}) imports {dst}"
        for src, dst, line in edges
        for banned in FORBIDDEN.get(src.split(".")[0], ())
        if dst.split(".")[0] == banned
    ]
    assert not wrong, "layer rule broken (simenv < agents < experiments):\n" + "\n".join(wrong)


def test_the_scan_sees_every_kind_of_import(tmp_path):
    """Relative, function-level and ``from pkg import submodule`` imports become edges; TYPE_CHECKING ones do not."""
    pkg = tmp_path / "simenv"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from simenv import b\n"
                              "def f():\n    from . import sub\n    import simenv.b as bee\n")
    (pkg / "b.py").write_text("from simenv.sub import c\nfrom simenv import VALUE\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import f\nimport numpy\n")
    modules = module_files(tmp_path, ("simenv",))
    found = {(s, d) for m in modules for s, d, _ in imports_of(m, modules)}
    assert found == {
        ("simenv", "simenv.a"),
        ("simenv.a", "simenv.sub"),
        ("simenv.a", "simenv.b"),
        ("simenv.b", "simenv.sub.c"),
        ("simenv.b", "simenv"),
        ("simenv.sub.c", "simenv.a"),
    }
    graph = {m: {d for s, d in found if s == m} for m in modules}
    assert strongly_connected(graph) == [["simenv", "simenv.a", "simenv.b", "simenv.sub.c"]]
