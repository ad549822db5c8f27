"""Escaping EHR-supplied text for GitHub-flavoured markdown: no raw HTML, no injected markup."""

from __future__ import annotations

# HTML characters become entities and every markdown-special character is backslashed, in one
# C pass: no entity holds a special character and no backslashed one an HTML character, so one
# table does what the entities then the backslashes would.
_SPECIAL = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;"} | {char: "\\" + char for char in "\\`*_{}[]()#+-.!|~"}
)


def escape(text: str) -> str:
    """``text`` as inert markdown: HTML characters become entities and markup is backslashed."""
    return " ".join(text.split()).translate(_SPECIAL)
