"""A concept coded in a few systems at once (ICD-10 and SNOMED) is remembered whole: answered
from memory exactly as matching it afresh answers, whatever its codings hold, and kept apart
from the one-coding memory the sift reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.record.matching import (
    CODE_FIELDS,
    REMEMBERED_TEXT_CHARS,
    SEVERAL_CODINGS,
    ConceptMatcher,
    MatchMemo,
)
from cds.settings import PROJECT_ROOT
from cds.valuesets import ICD10CM, NO_SETS, ValueSets, load_valuesets

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RADICULOPATHY: dict[str, Any] = {
    "coding": [
        {"system": ICD10CM, "code": "M54.16", "display": "Radiculopathy, lumbar region"},
        {"system": SCT, "code": "128196005", "display": "Lumbar radiculopathy"},
    ],
    "text": "Lumbar radiculopathy",
}

SETS = load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return SETS


def afresh(sets: ValueSets, resource_type: str, concept: object) -> object:
    """What matching answers with nothing remembered."""
    return ConceptMatcher(MatchMemo(sets), CODE_FIELDS).sets(concept, resource_type)


def test_a_concept_in_two_systems_is_matched_once_then_answered_from_memory(
    sets: ValueSets,
) -> None:
    memo = MatchMemo(sets)
    matcher = memo.matcher()
    first = matcher.main("Condition", RADICULOPATHY)
    assert "radic" in first[0]
    assert len(memo.several) == 1
    assert matcher.main("Condition", dict(RADICULOPATHY)) is first
    assert first == afresh(sets, "Condition", RADICULOPATHY)


def test_it_never_feeds_the_one_coding_memory_the_sift_drops_entries_by(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    nothing = {"coding": [{"system": SCT, "code": "1"}, {"system": SCT, "code": "2"}]}
    assert memo.matcher().main("Condition", nothing) == (NO_SETS, NO_SETS)
    assert memo.concepts == {}
    assert memo.unmatched == {}
    assert len(memo.several) == 1


def test_each_coding_its_order_and_the_text_make_another_key(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    matcher = memo.matcher()
    second = RADICULOPATHY["coding"][1]
    variants: list[dict[str, Any]] = [
        RADICULOPATHY,
        {**RADICULOPATHY, "coding": [RADICULOPATHY["coding"][0], {**second, "code": "9"}]},
        {**RADICULOPATHY, "coding": list(reversed(RADICULOPATHY["coding"]))},
        {**RADICULOPATHY, "text": "sciatica"},
        {"coding": [{"system": SCT, "code": "9"}, {"system": LOINC, "code": "8"}]},
    ]
    for concept in variants:
        assert matcher.main("Condition", concept) == afresh(sets, "Condition", concept)
    assert len(memo.several) == len(variants)
    for concept in variants:  # now from memory
        assert matcher.main("Condition", concept) == afresh(sets, "Condition", concept)


def test_codings_that_cannot_be_a_key_are_matched_every_time(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    matcher = memo.matcher()
    long_text = "sciatica " + "x" * REMEMBERED_TEXT_CHARS
    unkeyed: list[dict[str, Any]] = [
        {**RADICULOPATHY, "text": long_text},  # free text: never kept
        {"coding": [*RADICULOPATHY["coding"], "M54.16"]},  # not a coding: read as the sets read it
        {"coding": [{"system": ICD10CM, "code": ["M54.16"]}, RADICULOPATHY["coding"][1]]},
    ]
    for concept in unkeyed:
        assert matcher.main("Condition", concept) == afresh(sets, "Condition", concept)
    assert memo.several == {}


def test_more_codings_than_a_few_are_matched_every_time(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    many = {"coding": [RADICULOPATHY["coding"][0]] * (SEVERAL_CODINGS + 1)}
    assert memo.matcher().main("Condition", many) == afresh(sets, "Condition", many)
    assert memo.several == {}


def test_the_memory_of_several_codings_starts_over_when_full_and_clears(sets: ValueSets) -> None:
    memo = MatchMemo(sets, concept_limit=3)
    matcher = memo.matcher()
    for i in range(10):
        matcher.main("Condition", {"coding": [{"system": SCT, "code": str(i)}] * 2})
        assert len(memo.several) <= 3
    assert len(memo) >= len(memo.several) > 0
    memo.clear()
    assert memo.several == {}
    assert len(memo) == 0


def test_a_field_the_resource_lacks_matches_nothing(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    assert memo.matcher().main("ServiceRequest", None) == (NO_SETS, NO_SETS)
    assert len(memo) == 0


_STRINGS = st.sampled_from(
    ["M54.16", "128196005", "Lumbar radiculopathy", "sciatica", "foot drop", "", "x"]
)
_VALUES = st.one_of(
    _STRINGS,
    st.sampled_from([ICD10CM, SCT, LOINC]),
    st.none(),
    st.integers(-1, 2),
    st.booleans(),
    st.lists(_STRINGS, max_size=1),
)
_CODINGS = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"system": _VALUES, "code": _VALUES, "display": _VALUES, "version": _VALUES}
    ),
    _STRINGS,
)
_CONCEPTS = st.fixed_dictionaries(
    {"coding": st.lists(_CODINGS, min_size=2, max_size=SEVERAL_CODINGS + 1)},
    optional={"text": _VALUES},
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["Condition", "Observation", "Procedure"]), _CONCEPTS),
        min_size=1,
        max_size=6,
    )
)
def test_any_concept_of_several_codings_answers_as_matching_it_afresh(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    memo = MatchMemo(SETS)
    matcher = memo.matcher()
    for _ in range(2):  # the second time from memory, where it was kept
        for resource_type, concept in calls:
            assert matcher.main(resource_type, concept) == afresh(SETS, resource_type, concept)
