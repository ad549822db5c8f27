"""The repository stands alone: nothing it ships points outside itself, and its copies of the
CDS Hooks example files are verbatim."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.examples import FIXTURES, ROOT, fixture_files, published_copy

# A path into the team's reference folder beside the checkout, or an absolute path from
# somebody's machine.
OUTSIDE = re.compile(
    r"\.\./shared\b|\bshared/(?:clinical|design|spec|cds-hooks-examples)\b"
    r"|(?<![\w.:/-])/(?:work|home|Users|root|tmp)/[\w.-]"
)
# Files that must name what they forbid, or that hold copied bytes we never edit.
EXEMPT = {Path("tests/test_standalone.py")}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [Path(name) for name in listed.split("\0") if name]


def test_no_tracked_file_points_outside_the_repository() -> None:
    """README, docs, scripts, code, tests and data name no sibling folder and no absolute path."""
    offenders = []
    for relative in _tracked_text_files():
        if relative in EXEMPT or relative.is_relative_to(FIXTURES.relative_to(ROOT)):
            continue
        try:
            text = (ROOT / relative).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("fixture", fixture_files(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_the_projects_copy_of_a_published_example_is_verbatim(fixture: Path) -> None:
    """Each file in tests/fixtures/cds-hooks/ is byte for byte the published example."""
    assert fixture.read_bytes() == published_copy(fixture).read_bytes()
