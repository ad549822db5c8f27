"""The CDS Hooks example files the tests read: the project's own copies, and where the published
reference copies would be found when a reference checkout sits beside the repository.

Every test reads the project's copies in ``tests/fixtures/cds-hooks/`` (their origin is in the
README there), so the suite runs on a bare clone. Only the comparison tests reach for the
reference copies, and they skip with a reason when those are not there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cds-hooks"
SPEC_EXAMPLES = FIXTURES / "spec-2.0.1"
HOOKS_LIBRARY = FIXTURES / "hooks-library-1.0.1"
SANDBOX = FIXTURES / "sandbox"
DRAFT_3 = FIXTURES / "cds-hooks-3.0-draft"

# The optional reference checkout: the team's read-only folder of published example files and
# clinical sources, when it happens to sit next to the repository. Never required.
REFERENCE = ROOT.parent / "shared"
_PUBLISHED_FOLDERS = {
    "spec-2.0.1": "spec-2.0.1",
    "hooks-library-1.0.1": "hooks-library-1.0.1",
    "sandbox": "sandbox",
    "cds-hooks-3.0-draft": "cds-hooks-3.0-draft-main-2026-06",
}


def load(path: Path) -> Any:
    """A project fixture as JSON; a ``.jsonfrag`` (a bare ``"context": {...}``) is wrapped."""
    text = path.read_text(encoding="utf-8")
    return json.loads("{" + text + "}" if path.suffix == ".jsonfrag" else text)


def spec_example(name: str) -> Any:
    """One of the CDS Hooks 2.0.1 specification's examples, from the project's copy."""
    return load(SPEC_EXAMPLES / name)


def fixture_files() -> list[Path]:
    """Every copied example file, for the verbatim comparison."""
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md")


def published_copy(fixture: Path) -> Path:
    """The published file a project fixture was copied from; skips the test when it is absent."""
    relative = fixture.relative_to(FIXTURES)
    folder = _PUBLISHED_FOLDERS[relative.parts[0]]
    published = REFERENCE / "cds-hooks-examples" / folder / Path(*relative.parts[1:])
    if not published.is_file():
        pytest.skip(
            "the published CDS Hooks example files are not beside this checkout; the project's "
            f"copy {relative} is what every other test reads"
        )
    return published


def published_valuesets() -> Any:
    """The clinical team's value-set list, when the reference checkout is present; else skip."""
    path = REFERENCE / "clinical" / "valuesets.json"
    if not path.is_file():
        pytest.skip(
            "the clinical team's value-set list is not beside this checkout; the shipped "
            "rules/valuesets/ files stand for it"
        )
    return json.loads(path.read_text(encoding="utf-8"))
