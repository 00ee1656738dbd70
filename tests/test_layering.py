"""The dependency direction of DEVELOPERS.md, read from the source: dsl ← compiler ← registry ← decision_server ←
the CLI, compiler ← simulations, and nothing in dsl/, compiler/, registry/ or simulations/ imports Flask (the web
layers sit on top, never underneath)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# package → the project packages it must not import
FORBIDDEN = {
    "dsl": {"compiler", "registry", "decide_cli", "decision_server", "admin_ui", "simulations"},
    "compiler": {"registry", "decide_cli", "decision_server", "admin_ui", "simulations"},
    "registry": {"decide_cli", "decision_server", "admin_ui", "simulations"},
    "decision_server": {"decide_cli", "admin_ui", "simulations"},
    # Back-tests need the compiled engine only: the CLI resolves registry references and hands over a Policy.
    "simulations": {"registry", "decision_server", "decide_cli", "admin_ui"},
}
WEB_FREE = {"dsl", "compiler", "registry", "simulations"}
NO_WEB = {"flask", "flask_admin", "flask_login", "flask_wtf", "werkzeug", "gunicorn"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction_and_no_web_imports(package: str) -> None:
    sources = sorted((REPO / package).rglob("*.py")) + sorted((REPO / package).rglob("*.pyx"))
    assert sources, package
    problems = []
    for path in sources:
        if path.suffix == ".pyx":
            text = path.read_text(encoding="utf-8")
            problems += [
                f"{path}: imports {name}" for name in NO_WEB if f"import {name}" in text and package in WEB_FREE
            ]
            continue
        for name in imported_top_levels(path) & (FORBIDDEN[package] | (NO_WEB if package in WEB_FREE else set())):
            problems.append(f"{path.relative_to(REPO)}: imports {name}")
    assert problems == []
