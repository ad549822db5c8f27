"""What the record remembers per resource: an entry read from memory is the entry reading the
resource again would make, and memory never decides whether a resource is used (another
patient's, a changed one, an invalid one, a draft, an onset read against this call's Patient)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, load_catalogue
from cds.fhir import ValidationMemo
from cds.record import PatientRecord, build_record
from cds.record.entry_memo import MAX_ENTRIES, EntryMemo
from cds.record.matching import MatchMemo
from cds.settings import PROJECT_ROOT, Settings
from cds.valuesets import ValueSets, load_valuesets
from tests.test_compiled_rules import _drafts, _resources
from tests.test_record import LIMB, NOW, RADIC, WINDOWS, condition

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-01"}


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


class Memos:
    """One app's memos, as ``cds.caches`` holds them."""

    def __init__(self, sets: ValueSets, size: int = 100) -> None:
        self.validation = ValidationMemo(size)
        self.matching = MatchMemo(sets)
        self.entries = EntryMemo(sets, size)

    def record(
        self,
        *resources: dict[str, Any],
        patient_id: str = "p1",
        now: datetime = NOW,
        **kw: Any,
    ) -> PatientRecord:
        return build_record(
            self.matching.valuesets,
            now,
            patient_id,
            list(resources),
            windows=WINDOWS,
            validation=self.validation,
            matching=self.matching,
            entries=self.entries,
            **kw,
        )


def test_a_repeat_call_takes_each_entry_from_memory_and_it_is_the_entry_read_afresh(
    sets: ValueSets,
) -> None:
    memos = Memos(sets)
    resources = [PATIENT, condition(), condition("M54.17", rid="c2", bodySite=[{"text": "L"}])]
    first = memos.record(*resources)
    second = memos.record(*json.loads(json.dumps(resources)))
    afresh = build_record(sets, NOW, "p1", resources, windows=WINDOWS)
    assert len(first.entries) == 2
    assert second.entries == first.entries == afresh.entries
    assert all(a is b for a, b in zip(second.entries, first.entries, strict=True))
    # Validation is still asked (from its own memo) and counted as before: the Patient too.
    assert (second.models_built, second.validations_remembered) == (3, 3)


def test_a_changed_resource_is_read_again(sets: ValueSets) -> None:
    memos = Memos(sets)
    first = memos.record(PATIENT, condition())
    moved = memos.record(PATIENT, condition(onsetDateTime="2025-12-24"))
    refuted = memos.record(PATIENT, condition(verificationStatus={"coding": [{"code": "refuted"}]}))
    assert first.entries[0].date == datetime(2026, 2, 1, tzinfo=UTC)
    assert moved.entries[0].date == datetime(2025, 12, 24, tzinfo=UTC)
    assert refuted.entries == []
    assert memos.record(PATIENT, condition()).entries == first.entries


def test_another_patients_resource_is_refused_though_its_content_is_remembered(
    sets: ValueSets,
) -> None:
    memos = Memos(sets)
    theirs = condition(subject={"reference": "Patient/p2"})
    for_them = memos.record({**PATIENT, "id": "p2"}, theirs, patient_id="p2")
    assert len(for_them.entries) == 1
    for_us = memos.record(PATIENT, theirs)
    assert for_us.entries == []
    assert for_us.skipped == {"Condition": 1}
    assert for_us.models_built == 1  # the Patient alone


def test_a_resource_that_makes_no_entry_stays_out_and_is_never_validated(
    sets: ValueSets,
) -> None:
    memos = Memos(sets)
    refuted = condition(verificationStatus={"coding": [{"code": "refuted"}]})
    for _ in range(2):
        built = memos.record(PATIENT, refuted)
        assert (built.entries, built.models_built) == ([], 1)  # the Patient alone
    assert len(memos.entries) == 1


def test_an_invalid_resource_stays_unreadable_whatever_memory_holds(sets: ValueSets) -> None:
    memos = Memos(sets)
    invalid = condition(clinicalStatus="active")  # a string where a CodeableConcept belongs
    for _ in range(2):
        built = memos.record(PATIENT, invalid)
        assert built.entries == []
        assert list(built.unreadable) == [id(invalid)]
        assert built.skipped == {"Condition": 1}


def test_the_same_resource_twice_in_one_call_makes_one_entry(sets: ValueSets) -> None:
    memos = Memos(sets)
    memos.record(PATIENT, condition())
    assert len(memos.record(PATIENT, condition(), condition()).entries) == 1


def test_limb_symptoms_are_part_of_what_is_remembered(sets: ValueSets) -> None:
    """A service without the limb-symptom sets keeps a hand's numbness; one with them does not,
    whichever read the resource first."""
    memos = Memos(sets)
    hand = condition("R20.2", rid="a", bodySite=[{"text": "Left hand"}])
    sensory = frozenset({"sensory"})
    assert memos.record(PATIENT, hand).conditions(sensory)
    assert not memos.record(PATIENT, hand, limb_symptoms=LIMB).conditions(sensory)
    assert memos.record(PATIENT, hand).conditions(sensory)


def test_an_onset_given_as_an_age_is_read_against_each_calls_patient(sets: ValueSets) -> None:
    memos = Memos(sets)
    aged = condition(onsetDateTime=None, onsetAge={"value": 50, "unit": "a"})
    aged.pop("onsetDateTime")
    older = memos.record(PATIENT, aged)
    younger = memos.record({**PATIENT, "birthDate": "1975-05-01"}, aged)
    assert older.entries[0].date == datetime(2020, 5, 1, tzinfo=UTC)
    assert younger.entries[0].date == datetime(2025, 5, 1, tzinfo=UTC)


def test_a_draft_order_is_dated_by_each_call_and_never_remembered(sets: ValueSets) -> None:
    memos = Memos(sets)
    order = {
        "resourceType": "ServiceRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
    }
    later = NOW + timedelta(days=1)
    dates = [memos.record(PATIENT, drafts=[order], now=at).entries[0].date for at in (NOW, later)]
    assert dates == [NOW, later]
    assert len(memos.entries) == 0


def test_a_resource_without_an_id_is_never_remembered(sets: ValueSets) -> None:
    memos = Memos(sets)
    anonymous = condition()
    anonymous.pop("id")
    assert memos.record(PATIENT, anonymous).entries[0].id == "anonymous-0"
    assert len(memos.entries) == 0


def test_the_memo_is_bounded_and_the_oldest_entry_leaves_first(sets: ValueSets) -> None:
    memos = Memos(sets, size=2)
    first = [memos.record(PATIENT, condition(rid=f"c{i}")).entries[0] for i in range(5)]
    assert len(memos.entries) == 2
    again = [memos.record(PATIENT, condition(rid=f"c{i}")).entries[0] for i in (3, 4, 0)]
    assert again[0] is first[3]
    assert again[1] is first[4]
    assert again[2] is not first[0]
    assert again[2] == first[0]


def test_the_app_sizes_it_by_the_validation_memo_and_turns_it_off_with_it(
    catalogue: Catalogue, sets: ValueSets
) -> None:
    assert EvaluationCaches.for_catalogue(catalogue).entries.max_entries == MAX_ENTRIES
    assert EvaluationCaches.for_catalogue(catalogue, 123).entries.max_entries == 123
    assert EvaluationCaches.for_catalogue(catalogue, 0).entries.max_entries == 0
    off = Memos(sets, size=0)
    assert off.record(PATIENT, condition()).conditions(RADIC)
    assert len(off.entries) == 0


def test_a_memo_built_for_other_value_sets_is_refused(sets: ValueSets) -> None:
    other = ValueSets(dict(sets.by_id))
    with pytest.raises(ValueError, match="other value sets"):
        build_record(sets, NOW, "p1", [PATIENT], windows=WINDOWS, entries=EntryMemo(other))


# --------------------------------------------------------------------------- golden cases


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    settings = Settings()
    return load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)


def _seen(record: PatientRecord) -> tuple[object, ...]:
    """Everything a record holds but how many validations memory answered."""
    return (
        record.entries,
        record.birth_date,
        record.skipped,
        record.repaired,
        record.unreadable,
        record.unreadable_drafts,
        record.models_built,
    )


def _build(
    catalogue: Catalogue, path: Any, case: Mapping[str, Any], memos: Memos | None
) -> PatientRecord | None:
    """The record of a golden case's request, through ``memos`` when given."""
    service = catalogue.services.get(path.parent.name)
    patient_id = (case["request"].get("context") or {}).get("patientId")
    if service is None or not isinstance(patient_id, str):
        return None
    return build_record(
        catalogue.valuesets,
        NOW,
        patient_id,
        _resources(case["request"], service),
        windows=service.policy.condition_windows,
        drafts=_drafts(case["request"]),
        limb_symptoms=service.limb_symptoms,
        validation=memos.validation if memos is not None else None,
        matching=memos.matching if memos is not None else None,
        entries=memos.entries if memos is not None else None,
    )


def test_every_golden_case_builds_the_same_record_from_memory_as_afresh(
    catalogue: Catalogue,
) -> None:
    memos = Memos(catalogue.valuesets, size=20_000)
    compared = 0
    for path in CASES:
        case = json.loads(path.read_text(encoding="utf-8"))
        afresh = _build(catalogue, path, case, None)
        if afresh is None:
            continue
        for _ in ("cold: remembered now", "warm: from memory"):
            remembered = _build(catalogue, path, case, memos)
            assert remembered is not None
            assert _seen(remembered) == _seen(afresh), path.name
        compared += 1
    assert compared > 20
    assert len(memos.entries) > 20
