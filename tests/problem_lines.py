"""Problem lines without their line and column, for tests about what a problem says.

Where a problem sits is tested in tests/test_rule_file_errors.py; the tests that compare
messages would otherwise break whenever a rule file gains a line.
"""

from __future__ import annotations

import re

_PLACE = re.compile(r"([^\s:]+\.yaml):\d+:\d+: ")


def unplaced_text(text: str) -> str:
    """``text`` with each ``file.yaml:line:column: `` written ``file.yaml: ``."""
    return _PLACE.sub(r"\1: ", text)


def unplaced(problems: list[str]) -> list[str]:
    return [unplaced_text(problem) for problem in problems]
