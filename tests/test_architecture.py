"""The import graph of the project's own modules has no cycle.

Every import of a project module (at module level or inside a function) is an edge; the
graph must sort topologically. A cycle is how "partially initialized module" errors start:
services that import tasks that import services. Lower layers reach upper ones through
``portfolio.events`` (subscribers) and ``config.celery.enqueue`` (tasks by name) instead.
"""

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "portfolio", "pricing", "performance")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            # The deepest project module the import names (``from portfolio import tasks`` is portfolio.tasks).
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(path, name, modules) for name, path in modules.items()}


def test_the_graph_is_read():
    graph = import_graph()
    assert "portfolio.services" in graph["portfolio.tasks"]
    assert "pricing.costing" in graph["pricing.selectors"]


def test_no_module_imports_itself_back():
    graph = import_graph()
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"Import cycle: {' → '.join(error.args[1])}") from None


def test_pure_maths_imports_nothing_of_django_or_the_project():
    source = (ROOT / "pricing" / "costing.py").read_text()
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not names & {"django", "rest_framework", "celery", *PACKAGES}


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, stack = set(), [start]
    while stack:
        for name in graph.get(stack.pop(), ()):
            if name not in seen:
                seen.add(name)
                stack.append(name)
    return seen


def test_lower_layers_never_import_tasks_or_subscribers():
    # They record events or queue tasks by name (config.celery.enqueue) instead.
    graph = import_graph()
    lower = ["portfolio.services", "portfolio.governance", "portfolio.webhooks", "portfolio.selectors"]
    lower += ["portfolio.costs", "portfolio.models", "portfolio.events", "pricing.services", "pricing.selectors"]
    for name in lower:
        assert not reaches(graph, name) & {"portfolio.tasks", "portfolio.subscribers"}, name


def test_no_domain_module_imports_the_benchmarks():
    graph = import_graph()
    for name in graph:
        if not name.startswith("performance"):
            assert not any(target.startswith("performance") for target in graph[name]), name
