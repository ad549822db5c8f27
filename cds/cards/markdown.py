"""Escaping EHR-supplied text for GitHub-flavoured markdown: no raw HTML, no injected markup."""

from __future__ import annotations

# Every markdown-special character, backslashed; a translation table does it in one C pass.
_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_{}[]()#+-.!|~"})


def escape(text: str) -> str:
    """``text`` as inert markdown: HTML characters become entities and markup is backslashed."""
    flat = " ".join(text.split())
    html_safe = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return html_safe.translate(_SPECIAL)
