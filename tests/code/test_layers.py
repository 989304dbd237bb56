"""Layers point one way: no import cycle among make_us_rich's modules, nor among its parts.

Read statically (``ast``) from every package on disk (``src/make_us_rich`` and the folders mapped
into it: ``serving/``, ``components/``, ``pipelines/``). What counts as an import of module A by
module B:

- every ``import`` / ``from ... import`` statement in B, at module level *or* inside a function
  (a deferred import is still a dependency; deferring it only hides a cycle until run time),
  including those under ``if TYPE_CHECKING`` (a layer that names a higher one's types still
  points the wrong way);
- ``from P import name`` is an import of ``P.name`` when that is a module, else of ``P``;
- the package ``__init__`` that Python runs on the way to a submodule is not counted (else
  every package and its submodules would form a trivial cycle).

Two graphs are checked. Modules: no module may reach itself. Parts: each direct child of
``make_us_rich`` (a subpackage such as ``training`` or ``store``, or a top-level module such as
``stages`` or ``cli``) is one node, and parts may not reach each other both ways, so that
``stages -> training.config`` with ``training.workflow -> stages`` is a cycle although no single
module closes one. A ``__main__`` module is an entry point, like the ``mkrich`` script: nothing
imports it, so it is its own node (``python -m make_us_rich.serving`` runs the CLI's ``serve``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {
    "make_us_rich": ROOT / "src" / "make_us_rich",
    "make_us_rich.serving": ROOT / "serving",
    "make_us_rich.components": ROOT / "components",
    "make_us_rich.pipelines": ROOT / "pipelines",
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "make_us_rich" and parts and f"make_us_rich.{parts[0]}" in PACKAGE_DIRS:
                continue
            modules[name] = path
    return modules


def imports(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")[: None if is_package else -1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix
                         for a in node.names]
            else:
                continue
            for name in names:
                target = known(name) if name.startswith("make_us_rich") else None
                if target and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def part(module: str) -> str:
    if module.endswith(".__main__"):
        return module
    return ".".join(module.split(".")[:2])


def explain(component: list[str], graph: dict[str, dict[str, int]], modules, of=lambda m: m) -> str:
    lines = [" <-> ".join(component)]
    for module in sorted(graph):
        for target, line in sorted(graph[module].items()):
            if of(module) in component and of(target) in component and of(module) != of(target):
                lines.append(f"  {modules[module].relative_to(ROOT)}:{line} imports {target}")
    return "\n".join(lines)


def test_the_import_graph_is_read():
    modules = project_modules()
    graph = imports(modules)
    # a check that cannot fail is no check: the reader must see the project's known edges
    assert "make_us_rich.stages" in graph["make_us_rich.cli.data"] or any(
        t.startswith("make_us_rich.stages") for t in graph["make_us_rich.components.stages"])
    assert "make_us_rich.training.config" in graph["make_us_rich.stages"]
    assert "make_us_rich.serving.server" in graph["make_us_rich.cli.serve"]  # a function-level import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    modules = project_modules()
    graph = imports(modules)
    found = cycles({m: set(edges) for m, edges in graph.items()})
    assert not found, "import cycles:\n" + "\n".join(explain(c, graph, modules) for c in found)


def test_no_import_cycle_between_parts():
    modules = project_modules()
    graph = imports(modules)
    parts: dict[str, set[str]] = defaultdict(set)
    for module, edges in graph.items():
        parts[part(module)] |= {part(t) for t in edges if part(t) != part(module)}
    found = cycles(dict(parts))
    assert not found, "parts that import each other:\n" + "\n".join(
        explain(c, graph, modules, part) for c in found)


def test_the_ports_module_imports_nothing_of_the_project():
    graph = imports(project_modules())
    assert graph["make_us_rich.ports"] == {}
    # the request guard shared by the predictor and the console: below both, above nothing
    assert graph["make_us_rich.asgi"] == {}
    assert "make_us_rich.asgi" in graph["make_us_rich.serving.server"]
    assert "make_us_rich.asgi" in graph["make_us_rich.console.app"]
    # production code does not reach for the test doubles; the one exception is the CLI's
    # ``mkrich fake-binance`` (an offline demo that serves the bundled sample)
    users = {m for m, edges in graph.items() if not m.startswith("make_us_rich.testing")
             and any(t.startswith("make_us_rich.testing") for t in edges)}
    assert users == {"make_us_rich.cli.data"}


def test_no_private_name_is_imported_from_another_part():
    """``from make_us_rich.cli import _check_port_free`` in the console was how a cycle hid: a part
    uses another part's public names only (inside one part, its modules share privates)."""
    modules = project_modules()
    crossings = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("make_us_rich"):
                source = node.module or ""
                if part(source) == part(module):
                    continue
                crossings += [f"{path.relative_to(ROOT)}:{node.lineno} {source}.{a.name}"
                              for a in node.names if a.name.startswith("_") and a.name != "__version__"]
    assert not crossings, crossings


def test_one_feature_builder():
    """Training, evaluation and prediction build features with ``build_features`` only: a module
    that chained the two feature steps itself could drift from what the model was trained on."""
    steps = {"extract_features_from_dataset", "add_volatility_features"}
    callers = {}
    for module, path in project_modules().items():
        if module.startswith("make_us_rich.preprocessing"):
            continue
        called = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                  for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}
        if called & steps:
            callers[module] = sorted(called & steps)
    assert not callers, f"call make_us_rich.preprocessing.build_features instead: {callers}"
    # the three places that need features do use it
    for module in ("stages", "evaluation", "predict_client"):
        source = (ROOT / "src" / "make_us_rich" / f"{module}.py").read_text()
        assert "build_features(" in source, module
