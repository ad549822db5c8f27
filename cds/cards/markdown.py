"""Escaping EHR-supplied text for GitHub-flavoured markdown: no raw HTML, no injected markup."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def escape(text: str) -> str:
    """``text`` as inert markdown: HTML characters become entities and markup is backslashed."""
    flat = " ".join(text.split())
    html_safe = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", html_safe)
