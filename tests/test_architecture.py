"""The house rules on structure: which modules may import the boundary libraries, and what
module names may say."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cds"

# The HTTP layer: the routes and middleware (cds/api/), the app that wires them (app.py), and
# the servers that run it (serving.py: uvicorn's protocol; demo_server.py: `cds demo`).
HTTP_LAYER = {"api", "app.py", "serving.py", "demo_server.py"}

ALLOWED = {
    "fastapi": HTTP_LAYER,
    "starlette": HTTP_LAYER,
    "uvicorn": HTTP_LAYER | {"cli.py"},  # cli.py: `cds serve` hands the app to uvicorn.run
    "fhir.resources": {"fhir.py"},
    "httpx": {"fhir_client.py", "security", "app.py"},
}

# Names that say how, not what: a module is named after what it holds.
VAGUE_NAMES = {
    "utils",
    "util",
    "helpers",
    "common",
    "misc",
    "service",
    "wire",
    "runtime",
    "documents",
    "core",
    "base",
    "stuff",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_only_the_owning_modules_import_each_boundary_library(library: str) -> None:
    offenders = []
    for path in _modules():
        imported = _imports(path)
        if any(name == library or name.startswith(library + ".") for name in imported):
            owners = ALLOWED[library]
            if path.name not in owners and path.parent.name not in owners:
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_http_layer_is_the_only_one_importing_the_web_framework() -> None:
    web = ("fastapi", "starlette")
    outside = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if path.name not in HTTP_LAYER
        and path.relative_to(PACKAGE).parts[0] not in HTTP_LAYER
        and any(name.split(".")[0] in web for name in _imports(path))
    ]
    assert outside == []


def test_no_module_or_package_has_a_name_that_says_nothing_of_what_it_holds() -> None:
    names = {p.stem for p in _modules()} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    assert sorted(names & VAGUE_NAMES) == []


def test_no_module_shadows_a_name_from_typing() -> None:
    """``Optional = BeforeValidator(...)`` once read as ``typing.Optional`` to every reader."""
    import typing  # noqa: PLC0415 - its names are the data here

    reserved = set(typing.__all__)
    shadowing = []
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in reserved:
                    shadowing.append(f"{path.relative_to(PACKAGE)}: {target.id}")
    assert shadowing == []
