"""The layers of docs/ARCHITECTURE.md hold in the code: each folder imports only what its layer may, and no
module, and no folder, imports itself back through others (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iris_sagemaker"
ENTRY = "(entry points)"  # the modules at the top of the package

# What each layer may import of the package (docs/ARCHITECTURE.md, "Layers").
MAY_IMPORT = {
    "core": {"core"},
    "local_sagemaker": {"core", "local_sagemaker"},
    "steps": {"core", "steps", "local_sagemaker"},
    "serve": {"core", "local_sagemaker", "serve"},
    "dagster_defs": {"core", "steps", "dagster_defs"},
    "airflow_defs": {"core", "steps", "serve", "airflow_defs"},
}
# Third-party packages a layer must not import: no orchestrator below the adapters, no web stack outside
# serve.
ORCHESTRATORS = {"dagster", "dagster_aws", "dagster_airflow", "dagster_shared", "airflow"}
WEB_STACK = {"moto", "uvicorn", "starlette", "a2wsgi", "flask", "werkzeug"}
MAY_NOT_IMPORT = {
    "core": ORCHESTRATORS | WEB_STACK,
    "local_sagemaker": ORCHESTRATORS | WEB_STACK,
    "steps": ORCHESTRATORS | WEB_STACK,
    "serve": ORCHESTRATORS,
    "dagster_defs": {"airflow", "dagster_airflow"} | WEB_STACK,
    "airflow_defs": ORCHESTRATORS - {"airflow"} | WEB_STACK,
}
# The one module of an adapter allowed to reach the other orchestrator's library: the dagster-airflow bridge.
BRIDGES = {"iris_sagemaker.airflow_defs.dagster_job": {"dagster", "dagster_airflow"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}


def _resolve(name: str) -> str:
    """The package module an import names: itself, or its parent when the name is an attribute."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> Iterable[tuple[str, int]]:
    """Every ``(imported name, line)`` in ``module``, at any depth (inside functions too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno  # a submodule, or an attribute of ``base``


def internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for name, _ in imports(module):
            if name.startswith("iris_sagemaker.") or name == "iris_sagemaker":
                target = _resolve(name)
                if target and target != module:
                    edges[module].add(target)
    return edges


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else ENTRY


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
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


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module in sorted(MODULES):
        own = layer(module)
        if own == ENTRY:
            continue
        for name, line in imports(module):
            if name.startswith("iris_sagemaker."):
                target = layer(_resolve(name))
                if target not in MAY_IMPORT[own]:
                    where = MODULES[module].relative_to(REPO)
                    wrong.append(f"{where}:{line} ({own}) imports {name} ({target})")
            else:
                top = name.split(".")[0]
                if top in MAY_NOT_IMPORT[own] and top not in BRIDGES.get(module, set()):
                    wrong.append(f"{MODULES[module].relative_to(REPO)}:{line} ({own}) imports {top}")
    assert not wrong, "imports across the layers of docs/ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    found = cycles(internal_edges())
    assert not found, "import cycles between modules: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_folder_imports_itself_back() -> None:
    folders: dict[str, set[str]] = {}
    for module, targets in internal_edges().items():
        own = layer(module)
        folders.setdefault(own, set()).update(layer(t) for t in targets if layer(t) != own)
    found = cycles(folders)
    assert not found, "import cycles between folders: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert sorted(cycles(edges)) == expected


def test_a_lazy_import_counts(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from iris_sagemaker.serve import server\n    return server\n")
    MODULES["iris_sagemaker.core.lazy_probe"] = source
    try:
        assert ("iris_sagemaker.serve.server", 2) in list(imports("iris_sagemaker.core.lazy_probe"))
    finally:
        del MODULES["iris_sagemaker.core.lazy_probe"]


def test_every_folder_has_a_layer_and_the_docs_name_it() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(MAY_IMPORT), f"folders without a layer rule: {sorted(folders ^ set(MAY_IMPORT))}"
    architecture = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    missing = [folder for folder in sorted(folders) if f"`{folder}/`" not in architecture]
    assert not missing, f"docs/ARCHITECTURE.md does not describe: {missing}"
