"""The seams of the layout, read from the source: which package may import which.

- ``vae/`` (one run) never imports ``sweeps/`` (many runs);
- the sweepers (``sweeps/optuna/``, ``sweeps/grid/``) and the workers they start import nothing
  from ``vae/``: they are generic Hydra sweepers; the job talks to them through ``protocol/`` and
  names its own checks in their config;
- no module imports itself back through a cycle, at the top level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vae.config import PROJECT_ROOT

PACKAGES = ("protocol", "vae", "sweeps", "hydra_plugins")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((PROJECT_ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports, anywhere in it (function-local imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # the longest project module the target names (a class import names its module)
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_the_walk_finds_the_imports(graph):
    # The walker itself: known edges, so a broken walker cannot pass the checks below vacuously.
    assert "vae.models.objective" in graph["vae.models.beta_vae"]
    assert "vae.models.objective" in graph["sweeps.fused.stacked_vae"]
    assert "protocol" in graph["sweeps.optuna.trial_loop"]
    assert "vae.preflight" in graph["vae.warm_up"]


def test_the_library_never_imports_the_sweeps(graph):
    offenders = {m: sorted(i for i in deps if i.startswith("sweeps")) for m, deps in graph.items()
                 if m.startswith("vae") and any(i.startswith("sweeps") for i in deps)}
    assert offenders == {}


def test_the_sweepers_import_nothing_from_the_library(graph):
    # everything the sweepers can reach, following imports transitively
    seen, todo = set(), [m for m in graph if m.startswith(("sweeps.optuna", "sweeps.grid", "sweeps.workers"))]
    todo += ["hydra_plugins.betavae_sweepers.optuna_sweeper", "hydra_plugins.betavae_sweepers.checked_basic_sweeper"]
    assert len(todo) > 10
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    assert sorted(m for m in seen if m.startswith("vae")) == []


def test_no_import_cycles(graph):
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for dep in sorted(graph.get(m, ())):
            if dep.startswith(m + "."):
                continue   # a package importing its own submodule is not a cycle
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
