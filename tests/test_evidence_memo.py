"""A card's evidence bullet is written once per entry and then read: the same text the writer
gives, for the entry it was written from only, at most as many as the memo holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cds.cards.evidence_memo import EvidenceLines
from cds.cards.render import evidence_line, evidence_lines
from cds.record import Entry

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _entry(entry_id: str, display: str = "Sciatica *left*", **more: object) -> Entry:
    return Entry("Condition", entry_id, "condition", frozenset({"radic"}), display, NOW, **more)  # type: ignore[arg-type]


def test_a_bullet_is_what_the_writer_gives_and_a_repeat_entry_is_read_not_rewritten() -> None:
    lines = EvidenceLines()
    weight = Entry(
        "Observation", "o1", "measurement", frozenset({"body-weight"}), "Weight", NOW,
        value=71.5, unit="kg",
    )  # fmt: skip
    entries = [_entry("c1"), _entry("c2", "", draft=True), weight, replace(weight, date=None)]
    assert [lines(e) for e in entries] == [evidence_line(e) for e in entries]
    assert len(lines) == len(entries)
    assert [lines(e) for e in entries] == [evidence_line(e) for e in entries]
    assert len(lines) == len(entries)
    assert evidence_lines(entries, ("Measured",), lines) == evidence_lines(entries, ("Measured",))


def test_an_equal_entry_of_another_call_gets_its_own_bullet_with_the_same_text() -> None:
    lines = EvidenceLines()
    first, again = _entry("c1"), _entry("c1")
    assert lines(first) == lines(again) == evidence_line(first)
    assert len(lines) == 2


def test_the_memo_holds_at_most_its_size_the_oldest_leaving_first_and_none_at_zero() -> None:
    lines = EvidenceLines(max_lines=2)
    entries = [_entry(f"c{i}") for i in range(3)]
    for e in entries:
        lines(e)
    assert len(lines) == 2
    off = EvidenceLines(max_lines=0)
    assert off(entries[0]) == evidence_line(entries[0])
    assert len(off) == 0
    lines.clear()
    assert len(lines) == 0
