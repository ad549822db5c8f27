"""Which value sets a raw CodeableConcept belongs to: by its codings, and for some resource
types by the words of its text and displays. The hot loop of a big chart.

What matching remembers between calls lives in a :class:`MatchMemo` that the app owns and
passes in (``cds.caches``); the value sets themselves are only read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from cds.valuesets import NO_SETS, ValueSets

# Distinct codings (and texts per resource type) remembered per app; a chart's noise repeats
# the same few codes, and the bound keeps a stream of unique codes from growing memory (the
# memo is simply started over).
MEMO_LIMIT: Final[int] = 50_000
# Concepts remembered per app: a site's labs, vitals and problem codes number in the low
# thousands. Each entry holds a code's words, so both bounds keep the memo to a few MB.
CONCEPT_MEMO_LIMIT: Final[int] = 10_000
# The most codings a concept remembered whole may have (``MatchMemo.several``): a problem is
# often coded in two or three systems at once (ICD-10 and SNOMED); more is rare, and is matched
# every time rather than kept under a long key.
SEVERAL_CODINGS: Final[int] = 4
# Unmatched variants (type, system, display, text) remembered per code: a code is sent with a
# few displays at most; more would only lengthen the list every resource with it is checked in.
UNMATCHED_PER_CODE: Final[int] = 8
# Strings longer than this are matched every time, never remembered: a code, its display or a
# lab's name is short, and free text (or junk) is what would make the memos grow (50,000 x 256
# characters is the worst case, ~15 MB).
REMEMBERED_TEXT_CHARS: Final[int] = 256
# The longest main concept remembered as sent (``MatchMemo.sent``): one coding's
# system, code and display and a text, each within REMEMBERED_TEXT_CHARS, with room for
# escapes; longer JSON is judged decoded every time.
REMEMBERED_SENT_BYTES: Final[int] = 2048
# The members a concept remembered as sent may have, and its one coding's: terminology only,
# never an extension or an id, whatever an EHR puts in a concept.
_PLAIN_CONCEPT: Final = frozenset({"coding", "text"})
_PLAIN_CODING: Final = frozenset({"system", "code", "display"})

# The resource types a record is built from, each with the coded fields matching reads (the
# first is the main one, remembered per concept).
CODE_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "Condition": ("code",),
    "Observation": ("code", "valueCodeableConcept"),
    "Procedure": ("code",),
    "ServiceRequest": ("code", "performerType"),
    "DiagnosticReport": ("code",),
    "MedicationRequest": ("medicationCodeableConcept",),
    "MedicationStatement": ("medicationCodeableConcept",),
}

Sets = tuple[frozenset[str], frozenset[str]]
"""(sets the codings belong to, sets the text and displays name)."""
_NOTHING: Final[Sets] = (NO_SETS, NO_SETS)

Lookup = Callable[[str], frozenset[str]]


def coding_list(concept: dict[str, Any]) -> list[Any]:
    """``concept.coding`` as a list: a single Coding sent bare counts as a one-item list, as
    validation reshapes it (cds.fhir_repair); anything else holds no coding."""
    codings = concept.get("coding")
    if isinstance(codings, list):
        return codings
    return [codings] if isinstance(codings, dict) else []


class _RememberedText:
    """One resource type's text lookup, remembered per distinct short text."""

    def __init__(self, lookup: Lookup, limit: int) -> None:
        self._lookup = lookup
        self._limit = limit
        self.memo: dict[str, frozenset[str]] = {}

    def ids(self, text: str) -> frozenset[str]:
        found = self.memo.get(text)
        if found is not None:
            return found
        found = self._lookup(text)
        if len(text) <= REMEMBERED_TEXT_CHARS:
            if len(self.memo) >= self._limit:
                self.memo.clear()
            self.memo[text] = found
        return found


class MatchMemo:
    """What matching remembers for one catalogue's value sets: the sets of each coding, of each
    text per resource type, and of each one-coding concept.

    Every answer is a pure function of the value sets and the key, so a hit answers exactly what
    matching again would. Each memo is bounded (started over when full) and holds terminology
    (codes and their words), never ids, dates or values. One app owns one; two apps never share
    what they remember, even over the same catalogue.
    """

    def __init__(
        self,
        valuesets: ValueSets,
        *,
        limit: int = MEMO_LIMIT,
        concept_limit: int = CONCEPT_MEMO_LIMIT,
    ) -> None:
        self.valuesets = valuesets
        self.limit = limit
        self.concept_limit = concept_limit
        self.codings: dict[tuple[str, str], frozenset[str]] = {}
        # (resource type, system, code, display, text) of a one-coding CodeableConcept -> its
        # (coded, named) sets: what cds.record.build reads for most resources of a chart.
        self.concepts: dict[tuple[object, ...], Sets] = {}
        # (resource type, text, then system, code and display of each coding) of a concept of
        # 2 to SEVERAL_CODINGS codings -> its sets: kept apart from ``concepts``, whose
        # one-coding keys the sift reads (``unmatched``).
        self.several: dict[tuple[object, ...], Sets] = {}
        # code -> (resource type, system, display, text) of the remembered concepts above with
        # that one coding that match no set: what cds.record.build sifts most of a chart by.
        # Keyed by the short code alone, so a resource costs one short hash, then equality
        # checks, instead of hashing a system URL and a display.
        self.unmatched: dict[str, list[tuple[object, ...]]] = {}
        # resource type -> the JSON text, byte for byte as an EHR sent it, of main concepts
        # the sift judged -> whether it found them in ``unmatched`` (True: the entry is
        # dropped) or matching a set (False: the entry is read whole, whatever the memo
        # learns later). The sift judges an entry left undecoded whose concept was sent in the
        # same bytes after one lookup, without decoding the concept. Only concepts of
        # terminology alone (see ``remember_sent``); forgotten with ``unmatched``.
        self.sent: dict[str, dict[bytes, bool]] = {}
        self._sent = 0
        self._texts: dict[str, _RememberedText | None] = {}
        self._matcher: ConceptMatcher | None = None

    def matcher(self) -> ConceptMatcher:
        """The :class:`ConceptMatcher` over this memo for the types a record is built from
        (``CODE_FIELDS``), made once (every call builds a record; :meth:`clear` forgets it
        with the text memos it reads)."""
        matcher = self._matcher
        if matcher is None:
            matcher = self._matcher = ConceptMatcher(self, CODE_FIELDS)
        return matcher

    def __len__(self) -> int:
        """How many answers are remembered, over every memo."""
        texts = sum(len(t.memo) for t in self._texts.values() if t is not None)
        return len(self.codings) + len(self.concepts) + len(self.several) + texts + self._sent

    def clear(self) -> None:
        self.codings.clear()
        self.concepts.clear()
        self.several.clear()
        self._forget_unmatched()
        self._texts.clear()
        self._matcher = None

    def _forget_unmatched(self) -> None:
        self.unmatched.clear()
        self.sent.clear()
        self._sent = 0

    def remember_sent(
        self, resource_type: str, sent: bytes, concept: object, *, unmatched: bool
    ) -> None:
        """Remember ``sent``, the JSON of ``concept`` as it was sent, as the main concept of a
        ``resource_type`` found in ``unmatched`` (or matching a set), when it is terminology
        alone: one coding of system, code and display at most, and a text."""
        if len(sent) > REMEMBERED_SENT_BYTES or not _plain(concept):
            return
        if sent in self.sent.get(resource_type, ()):
            return
        if self._sent >= self.concept_limit:
            self.sent.clear()
            self._sent = 0
        self.sent.setdefault(resource_type, {})[sent] = unmatched
        self._sent += 1

    def remember_concept(self, key: tuple[object, ...], found: Sets) -> None:
        """Remember ``found`` for the one-coding concept ``key`` (:meth:`ConceptMatcher.main`)."""
        if len(self.concepts) >= self.concept_limit:
            self.concepts.clear()
            self._forget_unmatched()
        self.concepts[key] = found
        resource_type, system, code, display, text = key
        # String codes and systems only: a Condition coded otherwise may be text only, which
        # the record counts (cds.record.build.RecordBuilder.add).
        if not found[0] and not found[1] and isinstance(code, str) and isinstance(system, str):
            same_code = self.unmatched.setdefault(code, [])
            if len(same_code) < UNMATCHED_PER_CODE:
                same_code.append((resource_type, system, display, text))

    def remember_several(self, key: tuple[object, ...], found: Sets) -> None:
        """Remember ``found`` for the concept of several codings ``key``
        (:meth:`ConceptMatcher.main`); started over when full, as the one-coding memo."""
        if len(self.several) >= self.concept_limit:
            self.several.clear()
        self.several[key] = found

    def ids_for(self, system: str, code: str) -> frozenset[str]:
        """:meth:`ValueSets.ids_for`, remembered per short (system, code)."""
        key = (system, code)
        found = self.codings.get(key)
        if found is None:
            found = self.valuesets.ids_for(system, code)
            if len(system) + len(code) <= REMEMBERED_TEXT_CHARS:
                if len(self.codings) >= self.limit:
                    self.codings.clear()
                self.codings[key] = found
        return found

    def text_lookup(self, resource_type: str) -> Lookup | None:
        """:meth:`ValueSets.text_lookup`, remembered per short text (None when no set reads
        ``resource_type``'s text)."""
        if resource_type not in self._texts:
            lookup = self.valuesets.text_lookup(resource_type)
            remembered = _RememberedText(lookup, self.limit) if lookup is not None else None
            # setdefault: a concurrent evaluation that got here first keeps its memo.
            self._texts.setdefault(resource_type, remembered)
        found = self._texts[resource_type]
        return found.ids if found is not None else None

    def text_memo(self, resource_type: str) -> dict[str, frozenset[str]]:
        """What is remembered of ``resource_type``'s texts (empty before any lookup)."""
        found = self._texts.get(resource_type)
        return found.memo if found is not None else {}


def _plain(concept: object) -> bool:
    """Whether ``concept`` holds terminology alone (see ``MatchMemo.remember_sent``)."""
    if not isinstance(concept, dict) or not concept.keys() <= _PLAIN_CONCEPT:
        return False
    codings = concept.get("coding")
    return (
        isinstance(codings, list)
        and len(codings) == 1
        and isinstance(codings[0], dict)
        and codings[0].keys() <= _PLAIN_CODING
    )


def one_coding_key(
    resource_type: str, concept: dict[str, Any], coding: dict[str, Any]
) -> tuple[object, ...]:
    """What ``MatchMemo.concepts`` remembers the one-coding ``concept`` (its coding ``coding``)
    of a ``resource_type`` by. Only these fields decide the sets: other keys (version,
    extension...) and equal non-string values (all ignored alike) cannot make results differ."""
    return (
        resource_type,
        coding.get("system"),
        coding.get("code"),
        coding.get("display"),
        concept.get("text"),
    )


def _rememberable(key: tuple[object, ...]) -> bool:
    # Long strings (free text, not a code or its name) are matched every time, never kept.
    return not any(isinstance(part, str) and len(part) > REMEMBERED_TEXT_CHARS for part in key[1:])


class ConceptMatcher:
    """Matches raw concepts against one catalogue's value sets (raw JSON: any shape is safe),
    remembering through the app's ``memo``."""

    def __init__(self, memo: MatchMemo, resource_types: Iterable[str]) -> None:
        self.memo = memo
        self._ids_for = memo.ids_for
        self._text_ids: dict[str, Lookup] = {
            t: lookup for t in resource_types if (lookup := memo.text_lookup(t)) is not None
        }

    def sets(self, value: object, resource_type: str | None = None) -> Sets:
        """Sets the codings of ``value`` (a CodeableConcept or a list of them) belong to, and,
        for a ``resource_type`` whose sets also match by text, the sets its words name."""
        if isinstance(value, dict):
            text_ids = self._text_ids.get(resource_type) if resource_type is not None else None
            coded = self._coded(value)
            return coded, (self._named(value, text_ids) if text_ids is not None else NO_SETS)
        if isinstance(value, list):
            # Text is read from a single CodeableConcept only (never from a list).
            coded = NO_SETS
            for concept in value:
                if isinstance(concept, dict):
                    coded = coded | self._coded(concept)
            return coded, NO_SETS
        return NO_SETS, NO_SETS

    def _coded(self, concept: dict[str, Any]) -> frozenset[str]:
        # Most resources leave here with no set, so the loop stays flat: no calls but the
        # remembered lookup.
        coded = NO_SETS
        ids_for = self._ids_for
        for coding in coding_list(concept):
            if not isinstance(coding, dict):
                continue
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str) and (ids := ids_for(system, code)):
                coded = coded | ids
        return coded

    @staticmethod
    def _named(concept: dict[str, Any], text_ids: Lookup) -> frozenset[str]:
        named = NO_SETS
        texts = [concept.get("text")]
        texts += [c.get("display") for c in coding_list(concept) if isinstance(c, dict)]
        for text in texts:
            if isinstance(text, str) and text and (ids := text_ids(text)):
                named = named | ids
        return named

    def main(self, resource_type: str, value: object) -> Sets:
        """:meth:`sets` of a resource's coded field (the main one, or another of its
        ``CODE_FIELDS``), remembered for the usual concept of one coding: a chart repeats the
        same few hundred codes (each lab, each vital sign, each coded answer)."""
        # Inline but for the key, which the record's sift reads too: every resource the
        # sift keeps passes here.
        key: tuple[object, ...] | None = None
        if isinstance(value, dict):
            codings = value.get("coding")
            if isinstance(codings, list) and len(codings) == 1 and isinstance(codings[0], dict):
                key = one_coding_key(resource_type, value, codings[0])
            elif isinstance(codings, list) and 1 < len(codings) <= SEVERAL_CODINGS:
                return self._several(resource_type, value, codings)
        elif value is None:
            # A field the resource does not have (most ServiceRequests' performerType).
            return _NOTHING
        memo = self.memo.concepts
        if key is not None:
            try:
                found = memo.get(key)
            except TypeError:  # a list or object where a string belongs: not remembered
                key = None
            else:
                if found is not None:
                    return found
        found = self.sets(value, resource_type)
        if key is not None and _rememberable(key):
            self.memo.remember_concept(key, found)
        return found

    def _several(self, resource_type: str, concept: dict[str, Any], codings: list[Any]) -> Sets:
        """:meth:`main` of a concept of a few codings (a problem coded in ICD-10 and SNOMED),
        remembered by what decides its sets, as the one-coding key: its text, then each
        coding's system, code and display, in order."""
        parts: list[object] = [resource_type, concept.get("text")]
        for coding in codings:
            if not isinstance(coding, dict):
                return self.sets(concept, resource_type)
            parts += (coding.get("system"), coding.get("code"), coding.get("display"))
        key = tuple(parts)
        try:
            found = self.memo.several.get(key)
        except TypeError:  # a list or object where a string belongs: not remembered
            return self.sets(concept, resource_type)
        if found is None:
            found = self.sets(concept, resource_type)
            if _rememberable(key):
                self.memo.remember_several(key, found)
        return found
