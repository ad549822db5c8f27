"""What matching remembers: the app's MatchMemo answers as matching afresh would, stays bounded,
never keeps long text, and serves only the value sets it was built for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.record import PatientRecord, build_record
from cds.record.matching import REMEMBERED_TEXT_CHARS, MatchMemo
from cds.settings import PROJECT_ROOT
from cds.valuesets import ICD10CM, ValueSets, load_valuesets
from tests.test_record import WINDOWS, condition

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCT = "http://snomed.info/sct"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-01"}


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def record(memo: MatchMemo, *resources: dict[str, Any]) -> PatientRecord:
    return build_record(
        memo.valuesets, NOW, "p1", [PATIENT, *resources], windows=WINDOWS, matching=memo
    )


def test_a_repeated_coding_is_answered_from_memory_as_the_value_sets_answer_it(
    sets: ValueSets,
) -> None:
    memo = MatchMemo(sets)
    first = memo.ids_for(ICD10CM, "M54.16")
    assert memo.ids_for(ICD10CM, "M54.16") is first
    assert memo.ids_for(ICD10CM, "m5416") == first == sets.ids_for(ICD10CM, "M54.16")
    assert "radic" in first


def test_the_lookup_memory_starts_over_instead_of_growing_without_bound(sets: ValueSets) -> None:
    memo = MatchMemo(sets, limit=3)
    texts = memo.text_lookup("Observation")
    assert texts is not None
    for i in range(10):
        memo.ids_for(SCT, str(i))
        texts(f"lab {i}")
    assert len(memo.codings) <= 3
    assert len(memo.text_memo("Observation")) <= 3
    assert "radic" in memo.ids_for(ICD10CM, "M54.16")


def test_long_strings_are_matched_every_time_but_never_remembered(sets: ValueSets) -> None:
    """Free text or junk of any length cannot grow the lookup memos."""
    memo = MatchMemo(sets)
    long_code = "M54.16" + "9" * REMEMBERED_TEXT_CHARS
    long_text = "cobalamin " + "x" * REMEMBERED_TEXT_CHARS
    texts = memo.text_lookup("Observation")
    assert texts is not None
    assert memo.ids_for(ICD10CM, long_code) == sets.ids_for(ICD10CM, long_code)
    assert "b12-result" in texts(long_text)
    assert len(memo) == 0


def test_a_remembered_concept_matches_exactly_as_a_first_reading(sets: ValueSets) -> None:
    """The concept memo is keyed by type, system, code, display and text: each one counts."""
    memo = MatchMemo(sets)
    lab = {"system": "urn:local", "code": "L1"}
    variants: list[dict[str, Any]] = [
        {"coding": [{**lab, "display": "Vit. B12"}]},  # matched by display
        {"coding": [{**lab, "display": "Sodium"}]},  # same code, another display
        {"coding": [lab], "text": "cobalamin"},  # matched by text
        {"coding": [{**lab, "code": "L2"}], "text": "Sodium"},  # another code, no word
        {"coding": [{**lab, "display": ["Vit. B12"]}]},  # a list: unhashable, not remembered
    ]

    def sets_of(concept: dict[str, Any], resource_type: str = "Observation") -> frozenset[str]:
        raw = {
            "resourceType": resource_type,
            "id": "o1",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": concept,
            "valueQuantity": {"value": 180, "unit": "pg/mL"},
            "effectiveDateTime": "2026-02-01",
        }
        entries = record(memo, raw).entries
        return entries[0].valuesets if entries else frozenset()

    first = [sets_of(v) for v in variants]
    # The last is invalid R4 (a display must be a string), so it is skipped, not matched.
    assert ["b12-result" in found for found in first] == [True, False, True, False, False]
    assert [sets_of(v) for v in variants] == first  # the second time from the memo
    # The same words on a type no text set reads match nothing there.
    assert sets_of(variants[0], "Procedure") == frozenset()
    assert len(memo.concepts) == 5  # one per hashable variant and type


def test_the_concept_memory_starts_over_instead_of_growing_without_bound(
    sets: ValueSets,
) -> None:
    memo = MatchMemo(sets, concept_limit=3)
    labs = [
        {**condition(rid=f"c{i}"), "code": {"coding": [{"system": SCT, "code": str(i)}]}}
        for i in range(10)
    ]
    record(memo, *labs, condition(rid="radic"))
    assert len(memo.concepts) <= 3
    assert "radic" in memo.concepts[("Condition", ICD10CM, "M54.16", "x", None)][0]


def test_a_concept_with_long_free_text_is_matched_but_not_remembered(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    long_text = "sciatica " + "x" * REMEMBERED_TEXT_CHARS
    rec = record(memo, {**condition(), "code": {**condition()["code"], "text": long_text}})
    assert [e.id for e in rec.entries] == ["c1"]
    assert all(key[0] != "Condition" for key in memo.concepts)


def test_clearing_forgets_everything_and_matches_as_before(sets: ValueSets) -> None:
    memo = MatchMemo(sets)
    before = record(memo, condition()).entries
    assert len(memo) > 0
    memo.clear()
    assert len(memo) == 0
    assert record(memo, condition()).entries == before


def test_a_memo_serves_only_the_value_sets_it_was_built_for(sets: ValueSets) -> None:
    other = load_valuesets(PROJECT_ROOT / "rules" / "valuesets")
    with pytest.raises(ValueError, match="other value sets"):
        build_record(
            other, NOW, "p1", [PATIENT, condition()], windows=WINDOWS, matching=MatchMemo(sets)
        )


def test_a_record_built_without_the_apps_memos_remembers_nothing_anywhere(
    sets: ValueSets,
) -> None:
    """Without memos given, one call keeps its own: a second call starts as cold as the first."""
    first = build_record(sets, NOW, "p1", [PATIENT, condition()], windows=WINDOWS)
    second = build_record(sets, NOW, "p1", [PATIENT, condition()], windows=WINDOWS)
    assert (first.validations_remembered, second.validations_remembered) == (0, 0)
    assert first.entries == second.entries
