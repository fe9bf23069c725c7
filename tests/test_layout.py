"""The package's shape, read from its imports (so it stays true as code is added).

Three rules (DEVELOPERS.md, "Layout"):

1. no module of ``imlbench`` is over ``MAX_LINES`` lines;
2. no import circle between the package's modules: every ``import``/``from ... import`` counts,
   also those inside functions (a deferred import still ties the two modules together), except
   those under ``if TYPE_CHECKING:``, which never run;
3. the lower layers (``datasets``, ``robustness``, ``methods``, ``metrics``) never import from
   ``benchmark`` or ``results``, which run and report them (here ``TYPE_CHECKING`` imports count
   too: a method has no business naming the loop's types).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imlbench"
MAX_LINES = 400
LOWER = ("datasets", "robustness", "methods", "metrics")
HIGHER = ("benchmark", "results")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """``(imported imlbench module, under TYPE_CHECKING)`` for every import in ``path``.

    ``from a.b import c`` names ``a.b.c`` when that is a module of the package, else ``a.b``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, typing_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in modules else base, typing_only))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return [(target, typing_only) for target, typing_only in found
            if target == "imlbench" or target.startswith("imlbench.")]


def _graph() -> dict[str, list[tuple[str, bool]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    graph = {}
    for path in paths:
        edges = []
        for target, typing_only in _imports(path, modules):
            while target not in modules:  # `import imlbench.a.b.Name` style: the module above
                target = target.rpartition(".")[0]
            edges.append((target, typing_only))
        graph[_module_name(path)] = edges
    return graph


def _cycles(graph: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), runtime edges only.

    A package's ``__init__`` importing its own submodules is how packages work, not a circle,
    so edges from a package to modules inside it are left out."""
    edges = {node: sorted({target for target, typing_only in targets
                           if not typing_only and target != node
                           and not target.startswith(node + ".")})
             for node, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
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
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return components


def test_no_module_over_max_lines():
    long = {str(path.relative_to(PACKAGE.parent)): n for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along their seams): {long}"


def test_no_import_circle():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_the_runner_or_results(layer):
    wrong = sorted({(module, target) for module, targets in _graph().items()
                    if module.startswith(f"imlbench.{layer}")
                    for target, _ in targets
                    if any(target.startswith(f"imlbench.{higher}") for higher in HIGHER)})
    assert wrong == []


def test_the_rules_can_fail():
    """The checkers see a circle, an upward import and a deferred import when there is one."""
    graph = {"imlbench.a": [("imlbench.b", False)], "imlbench.b": [("imlbench.a", False)],
             "imlbench.c": [("imlbench.a", True)]}
    assert _cycles(graph) == [["imlbench.a", "imlbench.b"]]
    graph["imlbench.b"] = [("imlbench.a", True)]
    assert _cycles(graph) == []
    methods = PACKAGE / "methods" / "nets" / "deeplabv3plus.py"
    targets = [target for target, _ in _imports(methods, {_module_name(p)
                                                          for p in PACKAGE.rglob("*.py")})]
    assert "imlbench.errors" in targets  # a module-level import is seen
