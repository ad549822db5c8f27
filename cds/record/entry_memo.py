"""The record entry each value-set-matched resource made, remembered by the resource's content.

An EHR resends the same chart on every hook call (each chart open, each order selection), and
reading a matched resource into its entry (dates, sides, statuses, units, sets) costs several
times what digesting it does. The builder asks this memo with the digest the validation memo
already takes (``cds.fhir.ValidationMemo.digest``), so a repeat resource costs one digest and two
lookups.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from cds.oldest_out import insert_oldest_out
from cds.record.model import Entry
from cds.valuesets import ValueSets

# At most ~1 KB each (the entry, its strings and the key): a chart has a few dozen matched
# resources, so 10,000 hold the last few hundred charts a worker read, in ~10 MB at most.
MAX_ENTRIES: Final[int] = 10_000


class Dropped(Enum):
    """What the memo keeps for a resource whose entry is none (a refuted Condition, a draft
    Observation): kept out of the record, as reading it again would keep it out."""

    DROPPED = "makes no entry"


Remembered = Entry | Dropped
Key = tuple[bytes, frozenset[str]]
"""(digest of the resource's JSON, the service's limb-symptom sets)."""


class EntryMemo:
    """Entries by the digest of the resource they were read from and the limb-symptom sets
    they were read with, for the value sets this memo was built for.

    An entry is a pure function of the resource's content, the value sets and the limb-symptom
    sets, so a hit answers exactly what reading again would. The builder remembers none that
    depends on anything else: a draft order (dated by the call), a Condition whose onset is an
    age (read against the Patient's birthDate), a resource without an id (named by its place in
    the call). What decides whether a resource is used at all is still checked on every call
    before this memo is asked: that it names no other patient, that the call has not seen it
    already, and (after) that it is valid R4.

    Unlike the lookup memos, an entry holds what the record holds (the resource's id, dates, a
    value): it stays in this process's memory, bounded, and is never written anywhere. One app
    owns one (``cds.caches.EvaluationCaches``: at most MAX_ENTRIES, fewer when the validation
    memo is smaller, off with it); the oldest entry leaves first.
    """

    def __init__(self, valuesets: ValueSets, max_entries: int = MAX_ENTRIES) -> None:
        self.valuesets = valuesets
        self.max_entries = max_entries
        self._entries: dict[Key, Remembered] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: Key) -> Remembered | None:
        """What reading the resource of ``key`` gave; None when it is not remembered."""
        return self._entries.get(key)

    def remember(self, key: Key, entry: Entry | None) -> None:
        """Remember the entry read for ``key`` (None: the resource made none)."""
        remembered = Dropped.DROPPED if entry is None else entry
        insert_oldest_out(self._entries, key, remembered, self.max_entries)
