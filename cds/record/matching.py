"""Which value sets a raw CodeableConcept belongs to: by its codings, and for some resource
types by the words of its text and displays. The hot loop of a big chart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cds.valuesets import NO_SETS, REMEMBERED_TEXT_CHARS, ValueSets

# Concepts remembered per catalogue: a site's labs, vitals and problem codes number in the low
# thousands. Each entry holds a code's words, so both bounds keep the memo to a few MB.
CONCEPT_MEMO_LIMIT = 10_000

Sets = tuple[frozenset[str], frozenset[str]]
"""(sets the codings belong to, sets the text and displays name)."""


def coding_list(concept: dict[str, Any]) -> list[Any]:
    """``concept.coding`` as a list: a single Coding sent bare counts as a one-item list, as
    validation reshapes it (cds.fhir_repair); anything else holds no coding."""
    codings = concept.get("coding")
    if isinstance(codings, list):
        return codings
    return [codings] if isinstance(codings, dict) else []


class ConceptMatcher:
    """Matches raw concepts against one catalogue's value sets (raw JSON: any shape is safe)."""

    def __init__(self, valuesets: ValueSets, resource_types: Iterable[str]) -> None:
        self._ids_for = valuesets.ids_for
        self._memo = valuesets.concept_memo
        self._text_ids: dict[str, Callable[[str], frozenset[str]]] = {
            t: lookup for t in resource_types if (lookup := valuesets.text_lookup(t)) is not None
        }

    def sets(self, value: object, resource_type: str | None = None) -> Sets:
        """Sets the codings of ``value`` (a CodeableConcept or a list of them) belong to, and,
        for a ``resource_type`` whose sets also match by text, the sets its words name."""
        text_ids = self._text_ids.get(resource_type) if resource_type is not None else None
        # Most resources leave here with no set, so the loop stays flat: locals for every
        # lookup, no calls but the memoised ones.
        concepts: Iterable[object]
        if isinstance(value, dict):
            concepts = (value,)
        elif isinstance(value, list):
            # Text is read from a single CodeableConcept only (never from a list).
            concepts, text_ids = value, None
        else:
            return NO_SETS, NO_SETS
        coded = named = NO_SETS
        ids_for = self._ids_for
        for concept in concepts:
            if not isinstance(concept, dict):
                continue
            for coding in coding_list(concept):
                if not isinstance(coding, dict):
                    continue
                system, code = coding.get("system"), coding.get("code")
                if isinstance(system, str) and isinstance(code, str):
                    ids = ids_for(system, code)
                    if ids:
                        coded = coded | ids
                if text_ids is not None:
                    display = coding.get("display")
                    if isinstance(display, str) and display and (ids := text_ids(display)):
                        named = named | ids
            if text_ids is not None:
                text = concept.get("text")
                if isinstance(text, str) and text and (ids := text_ids(text)):
                    named = named | ids
        return coded, named

    def main(self, resource_type: str, value: object) -> Sets:
        """:meth:`sets` of a resource's main coded field, remembered for the usual concept of
        one coding: a chart repeats the same few hundred codes (each lab, each vital sign)."""
        key: tuple[object, ...] | None = None
        if isinstance(value, dict):
            codings = value.get("coding")
            if isinstance(codings, list) and len(codings) == 1 and isinstance(codings[0], dict):
                coding = codings[0]
                # Only these four fields decide the sets: other keys (version, extension...)
                # and equal non-string values (all ignored alike) cannot make results differ.
                key = (
                    resource_type,
                    coding.get("system"),
                    coding.get("code"),
                    coding.get("display"),
                    value.get("text"),
                )
        memo = self._memo
        if key is not None:
            try:
                found = memo.get(key)
            except TypeError:  # a list or object where a string belongs: not remembered
                key = None
            else:
                if found is not None:
                    return found
        found = self.sets(value, resource_type)
        # Long strings (free text, not a code or its name) are matched every time, never kept.
        if key is not None and not any(
            isinstance(part, str) and len(part) > REMEMBERED_TEXT_CHARS for part in key[1:]
        ):
            if len(memo) >= CONCEPT_MEMO_LIMIT:
                memo.clear()
            memo[key] = found
        return found
