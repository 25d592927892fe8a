"""Every third-party module our code imports is a declared dependency, in the right place.

Read from the source (AST), so it stays true as imports change: the packages may only import
``[project.dependencies]`` (or an extra such as ``spark``); reliability/, benchmarks/ and tests/
may also import the ``dev`` group. Every runtime dependency is imported by a package, or is
listed below with the reason it is needed without being imported.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = ("features", "rating", "training", "audit", "management", "serving", "monitoring")
PACKAGES += ("riskgrade",)
DEV_CODE = ("reliability", "benchmarks", "tests")
OURS = {*PACKAGES, *DEV_CODE}

RUNTIME_NOT_IMPORTED = {
    "psycopg": "SQLAlchemy's PostgreSQL driver (postgresql+psycopg:// audit URLs)",
    "dvc": "the pipeline runner: dvc repro runs dvc.yaml's stages",
}
"""Runtime dependencies no module imports by name, and why they are declared."""
NOT_INSTALLED = {
    "fasttreeshap": "benchmarks/bench_batch_explain.py runs it in a virtualenv of its own",
}
"""Modules imported (optionally) that this project's environment deliberately lacks."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read requirement {requirement!r}"
    return _normalise(match.group(1))


def _runtime() -> set[str]:
    project = PYPROJECT["project"]
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return {_requirement_name(r) for r in [*project["dependencies"], *extras]}


def _dev() -> set[str]:
    return {_requirement_name(r) for r in PYPROJECT["dependency-groups"]["dev"]}


def _imports(folder: Path) -> Iterator[tuple[str, Path]]:
    """(top-level module, file) of every absolute import under ``folder``, in any scope."""
    for path in sorted(folder.rglob("*.py")):
        siblings = {p.stem for p in path.parent.glob("*.py")}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OURS | siblings:
                    yield top, path


@cache
def _providers() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_normalise(d) for d in _providers().get(module, [])}


def _undeclared(folders: tuple[str, ...], allowed: set[str]) -> list[str]:
    problems = []
    for folder in folders:
        if not (ROOT / folder).is_dir():
            continue  # a package not merged yet (management/)
        for module, path in _imports(ROOT / folder):
            if module in NOT_INSTALLED:
                continue
            distributions = _distributions(module)
            if not distributions & allowed:
                where = path.relative_to(ROOT)
                problems.append(f"{where}: {module} (from {sorted(distributions) or '?'})")
    return sorted(set(problems))


def test_packages_import_only_declared_runtime_dependencies() -> None:
    # Given the runtime dependencies and extras of pyproject.toml
    runtime = _runtime()

    # When every import of every package is resolved to the distribution that provides it
    problems = _undeclared(PACKAGES, runtime)

    # Then each is declared in [project.dependencies] (a dev group is not installed by users)
    assert not problems, "imported but not in [project.dependencies]:\n" + "\n".join(problems)


def test_dev_code_imports_only_declared_dependencies() -> None:
    # Given the runtime dependencies plus the dev group
    declared = _runtime() | _dev()

    # When reliability/, benchmarks/ and tests/ are read
    problems = _undeclared(DEV_CODE, declared)

    # Then everything they import is declared (nothing works only as another's dependency)
    assert not problems, "imported but not declared:\n" + "\n".join(problems)


def test_every_runtime_dependency_is_used_by_a_package() -> None:
    # Given the distributions the packages import
    used = {
        distribution
        for folder in PACKAGES
        if (ROOT / folder).is_dir()
        for module, _ in _imports(ROOT / folder)
        for distribution in _distributions(module)
    }

    # When the runtime dependencies are compared with them
    unused = sorted(_runtime() - used - set(RUNTIME_NOT_IMPORTED))

    # Then none is there only for benchmarks, reliability or tests (those go in the dev group)
    assert not unused, f"runtime dependencies no package imports (move to dev?): {unused}"


def test_the_check_sees_a_missing_declaration() -> None:
    # Given a declared set lacking numpy, which the packages import
    runtime = _runtime() - {"numpy"}

    # When the packages are checked against it
    problems = _undeclared(PACKAGES, runtime)

    # Then the numpy imports are reported, with their files
    assert any(p.startswith("features/") and ": numpy (from ['numpy'])" in p for p in problems)
