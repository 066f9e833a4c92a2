"""The layering of the source tree, checked by reading it with ``ast`` (nothing of the product is imported).

Layers, bottom to top: core (``mmflow/``, layer 0) < connectors (1) < flows (2) < cli (3). An import may
only point down or stay in its own layer; product modules import each other without cycles; nothing
imports the old top-level names; the core stays pure (no Bytewax, Kafka, dataframes, HTTP, plotting).
"""

from __future__ import annotations

import ast
import functools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Source folder -> the installed package it becomes (pyproject.toml [tool.setuptools.package-dir]).
PRODUCT_ROOTS = {
    "mmflow": "mmflow",
    "connectors": "mmflow.connectors",
    "flows": "mmflow.flows",
    "cli": "mmflow.cli",
}
# Scanned only for the old top-level names.
OTHER_ROOTS = {"tests": "tests", "benchmarks": "benchmarks"}

LAYER_NAMES = ("core", "connectors", "flows", "cli")
# Every product module not under one of these packages is core (layer 0).
LAYER_OF_PACKAGE = {"mmflow.connectors": 1, "mmflow.flows": 2, "mmflow.cli": 3}

# Names of the layout before everything moved under `mmflow.` -> what to import instead (`cli` never was
# top level: guarded too).
OLD_NAMES = {
    "connectors": "mmflow.connectors",
    "flows": "mmflow.flows",
    "cli": "mmflow.cli",
    "mmflow.cli_live": "mmflow.cli.live",
}

# The pure core rule: third-party distributions no core module may import.
NOT_IN_CORE = frozenset(
    {
        "bytewax",
        "confluent_kafka",
        "polars",
        "prometheus_client",
        "aiohttp",
        "websockets",
        "ccxt",
        "matplotlib",
        "tqdm",
    }
)
# Allowed in the core, but only in the module that loads the configuration (pydantic itself is used by
# the models and the wire format too).
CORE_ONLY_IN = {"yaml": "mmflow.config", "pydantic_settings": "mmflow.config"}


# --- helpers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    module: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports of this module start from."""
        return self.module if self.is_package else self.module.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the module really imported (`from pkg import sub` -> `pkg.sub` when that is a module)
    spelled: str  # the absolute name as written (`from pkg import name` -> `pkg.name`)
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.target} (line {self.line})"


def module_name(relative: Path, prefix: str) -> str:
    """`kafka_io.py` under prefix `mmflow.connectors` -> `mmflow.connectors.kafka_io`; `__init__` is the package."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([prefix, *parts])


def discover(repo: Path, roots: Mapping[str, str]) -> dict[str, Source]:
    """Every `.py` file under the given source folders, by the module name it installs as."""
    sources: dict[str, Source] = {}
    for folder, prefix in roots.items():
        base = repo / folder
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(base)
            module = module_name(relative, prefix)
            sources[module] = Source(module, path, relative.name == "__init__.py")
    return sources


def with_packages(modules: Iterable[str]) -> set[str]:
    """The modules and every package above them (`mmflow` itself has no `__init__.py`: a namespace)."""
    names: set[str] = set()
    for module in modules:
        parts = module.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def absolute(module: str | None, level: int, package: str) -> str:
    """The absolute name of `from <level dots><module> import ...` written in `package`."""
    if level == 0:
        assert module is not None
        return module
    parts = package.split(".")
    if level > len(parts):
        raise ValueError(f"relative import beyond the top-level package in {package}")
    base = parts[: len(parts) - level + 1]
    return ".".join([*base, module] if module else base)


def raw_imports(tree: ast.AST, package: str) -> Iterator[tuple[str, str | None, int]]:
    """(absolute module, imported name or None, line) for every import statement, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module, node.level, package)
            for alias in node.names:
                yield base, None if alias.name == "*" else alias.name, node.lineno


def imports_of(source: Source, known: set[str]) -> list[Import]:
    """The imports of one file; `from pkg import sub` resolves to `pkg.sub` when that is a known module."""
    tree = ast.parse(source.path.read_text(encoding="utf-8"), filename=str(source.path))
    found = []
    for base, name, line in raw_imports(tree, source.package):
        spelled = f"{base}.{name}" if name else base
        target = spelled if name and spelled in known else base
        found.append(Import(source.module, target, spelled, line))
    return found


def collect_imports(sources: Mapping[str, Source]) -> list[Import]:
    known = with_packages(sources)
    return [imp for source in sources.values() for imp in imports_of(source, known)]


def is_product(module: str) -> bool:
    return module == "mmflow" or module.startswith("mmflow.")


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int | None:
    """0 core, 1 connectors, 2 flows, 3 cli; None for anything outside the product."""
    if not is_product(module):
        return None
    for package, layer in LAYER_OF_PACKAGE.items():
        if is_under(module, package):
            return layer
    return 0


def nearest_module(name: str, modules: Mapping[str, Source] | set[str]) -> str | None:
    """The longest prefix of `name` that is a module file (`mmflow.config.Settings` -> `mmflow.config`)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def import_graph(imports: Iterable[Import], modules: Mapping[str, Source]) -> dict[str, dict[str, int]]:
    """module -> {product module it imports: first line}. Only explicit imports: the parent packages'
    `__init__` that Python runs on the way are not edges."""
    graph: dict[str, dict[str, int]] = {module: {} for module in modules}
    for imp in imports:
        target = nearest_module(imp.target, modules)
        if target is None or target == imp.importer:
            continue
        lines = graph.setdefault(imp.importer, {})
        lines[target] = min(lines.get(target, imp.line), imp.line)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(start: str, graph: Mapping[str, Iterable[str]], within: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.get(node, ())):
            if succ not in within:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    return []


def describe_cycle(component: list[str], graph: Mapping[str, Mapping[str, int]]) -> str:
    members = set(component)
    edges = [
        f"    {src} -> {dst} (line {line})"
        for src in component
        for dst, line in sorted(graph[src].items())
        if dst in members
    ]
    path = " -> ".join(shortest_cycle(component[0], graph, members))
    return f"  cycle of {len(component)} modules: {path}\n" + "\n".join(edges)


def names_old_module(spelled: str) -> str | None:
    for old in OLD_NAMES:
        if is_under(spelled, old):
            return old
    return None


def core_rule_broken(imp: Import) -> str | None:
    top = imp.target.split(".")[0]
    if top in NOT_IN_CORE:
        return f"{top} is not allowed in the core"
    if top in CORE_ONLY_IN and imp.importer != CORE_ONLY_IN[top]:
        return f"{top} is only allowed in {CORE_ONLY_IN[top]}"
    return None


@functools.cache
def product_sources() -> dict[str, Source]:
    return discover(REPO, PRODUCT_ROOTS)


@functools.cache
def product_imports() -> tuple[Import, ...]:
    return tuple(collect_imports(product_sources()))


# --- the rules -----------------------------------------------------------------------------------------


def test_imports_only_point_down_the_layers() -> None:
    violations = {}  # one line per statement, however many names it imports
    for imp in product_imports():
        own, imported = layer_of(imp.importer), layer_of(imp.target)
        if imported is not None and own is not None and imported > own:
            violations[str(imp)] = f"  {imp}  [{LAYER_NAMES[own]} imports {LAYER_NAMES[imported]}]"
    assert not violations, (
        f"{len(violations)} import(s) point up the layers (core < connectors < flows < cli):\n"
        + "\n".join(violations.values())
    )


def test_no_import_cycles_among_product_modules() -> None:
    graph = import_graph(product_imports(), product_sources())
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert not cycles, f"{len(cycles)} import cycle(s) among product modules:\n" + "\n".join(
        describe_cycle(component, graph) for component in cycles
    )


def test_nothing_imports_the_old_top_level_names() -> None:
    sources = discover(REPO, {**PRODUCT_ROOTS, **OTHER_ROOTS})
    assert "tests.unit.test_layers" in sources and "mmflow.cli.main" in sources
    offenders = [
        f"  {imp.importer} imports {imp.spelled} (line {imp.line}): use {OLD_NAMES[old]}"
        for imp in collect_imports(sources)
        if (old := names_old_module(imp.spelled))
    ]
    assert not offenders, "imports of the old top-level names (everything is mmflow.…):\n" + "\n".join(
        offenders
    )


def test_core_is_pure() -> None:
    core = [imp for imp in product_imports() if layer_of(imp.importer) == 0]
    assert any(imp.importer == "mmflow.config" for imp in core), "the core's imports were not found"
    offenders = [f"  {imp}: {why}" for imp in core if (why := core_rule_broken(imp))]
    assert not offenders, "the core (mmflow/ outside connectors, flows, cli) must stay pure:\n" + "\n".join(
        offenders
    )


# --- the helpers themselves, on a small tree -----------------------------------------------------------


def test_helpers_resolve_relative_local_and_submodule_imports(tmp_path: Path) -> None:
    files = {
        "core/a.py": "from . import b\nfrom .sub import c\n\ndef f():\n    import json\n    from mmflow.sub import c as cc\n",
        "core/b.py": "import mmflow.a\n",
        "core/sub/__init__.py": "from .c import X\nfrom .. import a\n",
        "core/sub/c.py": "X = 1\n",
        "edge/__init__.py": "from mmflow.edge import io\n",
        "edge/io.py": "from ..sub import c\nfrom mmflow.edge.io import thing\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    sources = discover(tmp_path, {"core": "mmflow", "edge": "mmflow.edge"})
    assert sorted(sources) == [
        "mmflow.a",
        "mmflow.b",
        "mmflow.edge",
        "mmflow.edge.io",
        "mmflow.sub",
        "mmflow.sub.c",
    ]
    found = {(imp.importer, imp.target, imp.line) for imp in collect_imports(sources)}
    assert found == {
        ("mmflow.a", "mmflow.b", 1),
        ("mmflow.a", "mmflow.sub.c", 2),
        ("mmflow.a", "json", 5),
        ("mmflow.a", "mmflow.sub.c", 6),
        ("mmflow.b", "mmflow.a", 1),
        ("mmflow.sub", "mmflow.sub.c", 1),
        ("mmflow.sub", "mmflow.a", 2),
        ("mmflow.edge", "mmflow.edge.io", 1),
        ("mmflow.edge.io", "mmflow.sub.c", 1),
        ("mmflow.edge.io", "mmflow.edge.io", 2),
    }
    graph = import_graph(collect_imports(sources), sources)
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [["mmflow.a", "mmflow.b"]]
    assert shortest_cycle("mmflow.a", graph, {"mmflow.a", "mmflow.b"}) == ["mmflow.a", "mmflow.b", "mmflow.a"]
    assert [
        layer_of(m) for m in ("mmflow.sub.c", "mmflow.connectors.x", "mmflow.flows", "mmflow.cli.main")
    ] == [
        0,
        1,
        2,
        3,
    ]
    assert layer_of("json") is None and names_old_module("connectors.kafka_io") == "connectors"
    assert names_old_module("mmflow.connectors") is None
