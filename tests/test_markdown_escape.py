"""Markdown escaping in one translation table does what entities then backslashes did."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cds.cards.markdown import escape

SPECIAL = "\\`*_{}[]()#+-.!|~"
BACKSLASHED: dict[str, str | int | None] = {c: "\\" + c for c in SPECIAL}


def _entities_then_backslashes(text: str) -> str:
    flat = " ".join(text.split())
    html_safe = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return html_safe.translate(str.maketrans(BACKSLASHED))


@given(st.text(alphabet=st.sampled_from(SPECIAL + "&<>;amplgt \t\nxé"), max_size=40) | st.text())
def test_one_pass_escapes_exactly_as_entities_then_backslashes(text: str) -> None:
    assert escape(text) == _entities_then_backslashes(text)


def test_an_entity_is_never_backslashed_and_a_backslash_never_becomes_an_entity() -> None:
    assert escape("a & b <c> \\*") == "a &amp; b &lt;c&gt; \\\\\\*"
