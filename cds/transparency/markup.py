"""HTML built so that text is escaped unless it is already markup.

Everything on the rule pages comes from YAML files a reviewer edits; a `<` in a caution or a
display must stay a `<`. A plain ``str`` handed to :func:`element` is always escaped; only what
:func:`element` itself returns (:class:`Markup`) is inserted as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

# Elements with no content and no end tag.
_VOID = frozenset({"meta", "link", "br"})


class Markup(str):
    """HTML that is already escaped."""

    __slots__ = ()


def _escaped(child: str) -> str:
    return child if isinstance(child, Markup) else escape(child, quote=False)


def element(
    tag: str, attributes: Mapping[str, str | None] | None = None, *children: str | Markup
) -> Markup:
    """``<tag attributes>children</tag>``; attribute values and plain-text children escaped,
    an attribute whose value is None left out."""
    attrs = "".join(
        f' {name}="{escape(value, quote=True)}"'
        for name, value in (attributes or {}).items()
        if value is not None
    )
    if tag in _VOID:
        return Markup(f"<{tag}{attrs}>")
    return Markup(f"<{tag}{attrs}>{''.join(_escaped(c) for c in children)}</{tag}>")


def join(parts: Iterable[str | Markup]) -> Markup:
    """Several pieces side by side, plain text escaped."""
    return Markup("".join(_escaped(p) for p in parts))


def document(title: str, stylesheet: str, body: Iterable[Markup]) -> str:
    """A whole page: English, UTF-8, one stylesheet of the service's own, nothing from elsewhere."""
    head = join(
        [
            element("meta", {"charset": "utf-8"}),
            element("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
            element("title", None, title),
            # No favicon request (and no 404 for it): an empty icon of the page's own.
            element("link", {"rel": "icon", "href": "data:,"}),
            element("link", {"rel": "stylesheet", "href": stylesheet}),
        ]
    )
    page = element(
        "html", {"lang": "en"}, element("head", None, head), element("body", None, *body)
    )
    return "<!doctype html>\n" + page + "\n"
