"""The house rules on imports: one FHIR model site, one HTTP client site, one web framework site."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cds"

ALLOWED = {
    "fastapi": {"api", "app.py"},
    "fhir.resources": {"fhir.py"},
    "httpx": {"fhir_client.py", "security", "app.py"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_only_the_owning_modules_import_each_boundary_library(library: str) -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        imported = _imports(path)
        if any(name == library or name.startswith(library + ".") for name in imported):
            owners = ALLOWED[library]
            if path.name not in owners and path.parent.name not in owners:
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_package_has_no_utils_module_and_no_service_module() -> None:
    names = {p.name for p in PACKAGE.rglob("*.py")}
    assert "utils.py" not in names
    assert "service.py" not in names
