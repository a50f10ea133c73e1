"""The package's layers, read from its imports (every import, lazy ones included).

core/        the facts both trainers share: imports nothing else of the package, no torch
runs/        run management: imports only core, no torch
numpy_twin/  the NumPy twin: imports only core and runs, no torch, no lightning
lightning/   the Lightning side: imports only core and runs
analysis/    reads what the trainers wrote: may import the layers below it
cli.py       the command line: imported by scripts/ alone, never from inside the package
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "mlp_lightning"
TORCH_LIBRARIES = ("torch", "lightning", "torchmetrics")
# layer -> the layers of the package it may import (besides itself)
MAY_IMPORT = {
    "core": set(),
    "runs": {"core"},
    "numpy_twin": {"core", "runs"},
    "lightning": {"core", "runs"},
    "analysis": {"core", "runs", "numpy_twin", "lightning"},
    "cli": {"core", "runs", "lightning"},
}
NO_TORCH = ("core", "runs", "numpy_twin")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, known: dict[str, Path] | None = None) -> set[str]:
    """Every module ``path`` imports, anywhere in the file; ``from pkg import mod`` counts as ``pkg.mod``
    where ``pkg.mod`` is one of the ``known`` modules (the package's by default)."""
    known = MODULES if known is None else known
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module_name(path).split(".")
                package = package[: len(package) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mlp_lightning" or len(parts) < 2:
        return None
    return parts[1]


IMPORTS = {name: imported_modules(path) for name, path in MODULES.items()}


def test_every_module_sits_in_a_known_layer():
    homeless = [m for m in MODULES if m != "mlp_lightning" and layer(m) not in MAY_IMPORT]
    assert not homeless, f"modules outside the layers {sorted(MAY_IMPORT)}: {homeless}"


def imports_of(source_layer: str) -> list[tuple[str, str]]:
    """(module, what it imports) for every import made by a module of ``source_layer``."""
    return [(m, target) for m, targets in IMPORTS.items() if layer(m) == source_layer for target in targets]


@pytest.mark.parametrize("source_layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_the_layers_below_it(source_layer):
    allowed = (source_layer, None, *MAY_IMPORT[source_layer])
    broken = [
        f"{m} imports {t}" for m, t in imports_of(source_layer) if t in MODULES and layer(t) not in allowed
    ]
    assert not broken, broken


@pytest.mark.parametrize("source_layer", NO_TORCH)
def test_numpy_layers_import_no_torch_and_no_lightning(source_layer):
    broken = [f"{m} imports {t}" for m, t in imports_of(source_layer) if t.split(".")[0] in TORCH_LIBRARIES]
    assert not broken, broken


def test_only_scripts_import_the_command_line_module():
    importers = [module for module, targets in IMPORTS.items() if "mlp_lightning.cli" in targets]
    assert importers == [], f"the command line is the scripts' to import, not {importers}'"


def import_cycles(modules: dict[str, Path]) -> list[str]:
    """Each cycle in the imports among ``modules``, as ``a -> b -> a``."""
    imports = {m: imported_modules(p, modules) for m, p in modules.items()}
    graph = {m: {t for t in targets if t in modules and t != m} for m, targets in imports.items()}
    # a package's __init__ is not imported through by these arrows: it holds no code here
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_the_package_has_no_import_cycles():
    assert not import_cycles(MODULES)


def test_the_benchmarks_have_no_import_cycles():
    assert not import_cycles({module_name(p): p for p in sorted((REPO / "benchmarks").glob("*.py"))})


def test_the_layering_check_sees_a_forbidden_import(tmp_path):
    """The reader itself: a lazy import inside a function is found, so the rules cannot pass vacuously."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    import torch\n    from mlp_lightning.core import data\n")
    assert {"torch", "mlp_lightning.core", "mlp_lightning.core.data"} <= imported_modules(source)
