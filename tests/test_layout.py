"""The package's layout rules (docs/architecture.md), checked on the source with `ast`:

- no import cycle between modules, counting imports inside functions;
- the packages form layers: a module never imports from a layer above its own;
- at most 6 modules directly in `promptlab/`;
- two modules share a name only when the name is a kind's (`text.py`, `entities.py`: the same stage's
  role for two kinds, in the stage's folder).
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "promptlab"

# Lowest first; a module may import from its own layer and the layers below.
LAYERS = (
    ("promptlab.errors", "promptlab.paths", "promptlab.runtime"),
    ("promptlab.catalog",),
    ("promptlab.data",),
    ("promptlab.backends",),
    ("promptlab.metrics",),
    ("promptlab.methods",),
    ("promptlab.kinds",),
    ("promptlab.evaluation",),
    ("promptlab.continual",),
    ("promptlab.apply",),
    ("promptlab.api",),
    ("promptlab.commands", "promptlab.cli", "promptlab.__main__", "promptlab"),
)
KIND_NAMES = {"text", "entities"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Every promptlab module `path` imports, at module level or inside functions."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imported(path, name, set(found)) for name, path in found.items()}


def layer_of(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return best[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(module))


def shared_names(root: Path = PACKAGE) -> list[str]:
    names = Counter(path.stem for path in root.rglob("*.py") if path.stem != "__init__")
    return sorted(name for name, count in names.items() if count > 1 and name not in KIND_NAMES)


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_package_imports_from_a_layer_above():
    assert upward_imports(import_graph()) == []


def test_at_most_six_modules_in_the_package_root():
    root_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 6, root_modules


def test_no_two_modules_share_a_name_unless_it_is_a_kinds():
    assert shared_names() == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The checker itself: a function-level cycle and an upward import in a throwaway package are found."""
    package = tmp_path / "promptlab"
    (package / "catalog").mkdir(parents=True)
    (package / "apply").mkdir()
    for folder in (package, package / "catalog", package / "apply"):
        (folder / "__init__.py").write_text("")
    (package / "catalog" / "task.py").write_text("def f():\n    from promptlab.apply import serve\n")
    (package / "apply" / "serve.py").write_text("from promptlab.catalog.task import f\n")
    graph = import_graph(package)
    assert cycles(graph) == [["promptlab.apply.serve", "promptlab.catalog.task"]]
    assert upward_imports(graph) == ["promptlab.catalog.task -> promptlab.apply.serve"]
