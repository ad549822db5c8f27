"""Each evidence entry's bullet on a card, remembered for the entry it was written from.

An EHR resends the same chart on every hook call, and the record's entries of a resent resource
are the same objects (``cds.record.entry_memo``), so their bullets (type, escaped display,
date, value) are the same text every time: written once, then read. An entry is frozen, so its
bullet never changes; it is found by identity and kept beside the bullet, so another object can
never take its place. Like the entry memo it holds chart text: in this process's memory only,
bounded, the oldest leaving first; one app owns one (``cds.caches.EvaluationCaches``).
"""

from __future__ import annotations

from typing import Final

from cds.cards.render import evidence_line
from cds.oldest_out import insert_oldest_out
from cds.record import Entry

# A card lists a few entries; a chart has a few dozen: the last few hundred charts' bullets.
MAX_LINES: Final[int] = 10_000


class EvidenceLines:
    """:func:`cds.cards.render.evidence_line`, remembered per entry (at most ``max_lines``)."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.max_lines = max_lines
        self._lines: dict[int, tuple[Entry, str]] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def clear(self) -> None:
        self._lines.clear()

    def __call__(self, entry: Entry) -> str:
        known = self._lines.get(id(entry))
        if known is not None and known[0] is entry:
            return known[1]
        line = evidence_line(entry)
        insert_oldest_out(self._lines, id(entry), (entry, line), self.max_lines)
        return line
