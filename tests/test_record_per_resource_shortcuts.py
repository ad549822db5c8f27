"""The shortcuts each matched resource takes when a record is built answer and count what the
general path answers and counts: a resource remembered valid is counted as validation counts
it, a copy of a kept resource under another prefetch key is dropped as the duplicate check
drops it, and the matcher over the app's memo is made once and forgotten with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cds.fhir import ParseReport, ValidationMemo, read_resource
from cds.record import PatientRecord, build_record
from cds.record.entry_memo import EntryMemo
from cds.record.matching import MatchMemo
from cds.settings import PROJECT_ROOT
from cds.valuesets import ValueSets, load_valuesets
from tests.test_record import NOW, WINDOWS, condition

PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-01"}
# A bodySite sent as one CodeableConcept, not a list: valid only reshaped (cds.fhir_repair).
WRAPPED = condition(rid="c9", bodySite={"text": "Left leg"})


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def _copy(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` as another prefetch key would hold it: equal, not the same objects."""
    copied: dict[str, Any] = json.loads(json.dumps(raw))
    return copied


def _build(sets: ValueSets, *keys: list[dict[str, Any]], memos: bool = True) -> PatientRecord:
    validation, matching = ValidationMemo(100 if memos else 0), MatchMemo(sets)
    return build_record(
        sets,
        NOW,
        "p1",
        [PATIENT],
        by_key=list(keys),
        windows=WINDOWS,
        validation=validation,
        matching=matching,
        entries=EntryMemo(sets, 100 if memos else 0),
    )


def _counts(record: PatientRecord) -> tuple[object, ...]:
    return (
        [e.id for e in record.entries],
        record.skipped,
        record.models_built,
        record.repaired,
        list(record.unreadable.values()),
    )


# ---------------------------------------------------------------- remembered valid


def test_a_resource_remembered_valid_counts_as_one_read_from_memory() -> None:
    valid = condition()
    memo, general = ValidationMemo(10), ValidationMemo(10)
    key = memo.digest(valid)
    assert key is not None
    assert not memo.known_valid(key)  # not remembered yet: nothing counted
    assert (memo.hits, memo.misses) == (0, 0)
    read_resource(valid, ParseReport(), memo, key)
    read_resource(valid, ParseReport(), general, key)
    assert memo.known_valid(key)
    read_resource(valid, ParseReport(), general, key)
    assert (memo.hits, memo.misses) == (general.hits, general.misses) == (1, 1)


@pytest.mark.parametrize(
    "raw",
    [condition(clinicalStatus="active"), WRAPPED],
    ids=["invalid", "valid only reshaped"],
)
def test_an_invalid_or_reshaped_resource_is_never_known_valid(raw: dict[str, Any]) -> None:
    memo = ValidationMemo(10)
    key = memo.digest(raw)
    assert key is not None
    read_resource(raw, ParseReport(), memo, key)
    assert not memo.known_valid(key)
    assert (memo.hits, memo.misses) == (0, 1)


def test_a_repeat_call_counts_each_resource_remembered_as_validation_does(
    sets: ValueSets,
) -> None:
    validation, matching, entries = ValidationMemo(100), MatchMemo(sets), EntryMemo(sets, 100)
    resources = [PATIENT, condition(), condition("M54.17", rid="c2"), WRAPPED]
    built = [
        build_record(
            sets,
            NOW,
            "p1",
            _copy({"r": resources})["r"],
            windows=WINDOWS,
            validation=validation,
            matching=matching,
            entries=entries,
        )
        for _ in range(2)
    ]
    afresh = build_record(sets, NOW, "p1", resources, windows=WINDOWS)
    for record in built:
        assert _counts(record) == _counts(afresh)
        assert record.entries == afresh.entries
    assert [r.validations_remembered for r in built] == [0, 4]
    assert (validation.hits, validation.misses) == (4, 4)
    assert built[1].repaired == {("Condition", "bodySite"): 1}


# ---------------------------------------------------------------- copies under another key


def test_an_equal_copy_under_another_key_makes_no_second_entry_and_counts_nothing(
    sets: ValueSets,
) -> None:
    first = condition()
    record = _build(sets, [first], [_copy(first)])
    assert _counts(record) == (["c1"], {}, 2, {}, [])  # the Patient and c1 read once each


def test_a_reshaped_resources_copy_is_dropped_as_the_reshaped_one_was_kept(
    sets: ValueSets,
) -> None:
    record = _build(sets, [WRAPPED], [_copy(WRAPPED)])
    assert _counts(record) == (["c9"], {}, 2, {("Condition", "bodySite"): 1}, [])


@pytest.mark.parametrize("memos", [True, False], ids=["memos on", "memos off"])
def test_a_changed_resource_under_the_same_id_goes_the_whole_way(
    sets: ValueSets, memos: bool
) -> None:
    """Only an equal copy skips the work: the second version is matched, checked for its
    patient and counted as before, then dropped as a duplicate when it is the patient's."""
    first = condition()
    others = condition(subject={"reference": "Patient/p2"})
    text_only = {**condition(), "code": {"text": "sciatica"}}
    moved = condition(onsetDateTime="2025-12-24")
    record = _build(sets, [first], [others, text_only, moved], memos=memos)
    assert _counts(record) == (["c1"], {"Condition": 2}, 2, {}, [])
    assert record.entries[0].date == NOW.replace(month=2, day=1, hour=0)  # the first version


def test_a_copy_of_a_resource_that_made_no_entry_is_read_again(sets: ValueSets) -> None:
    refuted = condition(verificationStatus={"coding": [{"code": "refuted"}]})
    invalid = condition(rid="c2", clinicalStatus="active")
    record = _build(sets, [refuted, invalid], [_copy(refuted), _copy(invalid)])
    assert record.entries == []
    assert record.skipped == {"Condition": 2}  # the invalid one, under each key
    assert record.models_built == 3


def test_an_equal_copy_of_an_anonymous_resource_is_matched_again(sets: ValueSets) -> None:
    anonymous = {k: v for k, v in condition().items() if k != "id"}
    record = _build(sets, [anonymous], [_copy(anonymous)])
    # Anonymous resources are named by their place in the call, so both are kept.
    assert [e.id for e in record.entries] == ["anonymous-0", "anonymous-1"]


# ---------------------------------------------------------------- the matcher


def test_the_matcher_over_a_memo_is_made_once_and_forgotten_when_the_memo_is(
    sets: ValueSets,
) -> None:
    memo = MatchMemo(sets)
    matcher = memo.matcher()
    assert memo.matcher() is matcher
    assert matcher.memo is memo
    memo.clear()
    again = memo.matcher()
    assert again is not matcher
    coded = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}]}
    assert again.main("Condition", coded) == matcher.main("Condition", coded)
    assert again.main("Condition", coded)[0]
