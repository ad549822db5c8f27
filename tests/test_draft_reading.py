"""Which draft orders must be readable (cds.record.drafts): a type no rule reads is ignored,
well-formed codes are read only when a value set matches them, and a malformed code field or
a draft that is not a resource must be readable, or the call is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.record import PatientRecord, build_record
from cds.record.drafts import DraftReading, draft_reading
from cds.settings import PROJECT_ROOT
from cds.valuesets import ValueSets, load_valuesets
from tests.test_record import WINDOWS

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-01"}
PATIENT_ONLY = 1  # models_built when nothing but the Patient was validated
# An STU3 dosage: R4 repeats dosageInstruction and has no dose element, so this cannot be read.
STU3_DOSAGE = [{"text": "1 tab", "dose": {"value": 1}}]


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def lumbar_mri(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "d1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": CPT, "code": "72148"}]},
        **changes,
    }


def antibiotic(**changes: Any) -> dict[str, Any]:
    """The hooks library's order example: an antibiotic no rule is about."""
    return {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "617314"}]},
        **changes,
    }


def with_drafts(sets: ValueSets, *drafts: object) -> PatientRecord:
    return build_record(sets, NOW, "p1", [PATIENT], windows=WINDOWS, drafts=list(drafts))


@pytest.mark.parametrize(
    "raw",
    [
        {"resourceType": "NutritionOrder", "id": "n1", "status": "draft"},
        {"resourceType": "MedicationOrder", "id": "o1", "medication": "not R4 at all"},
        {"resourceType": "NutritionOrder", "code": "a string, but no rule reads this type"},
    ],
    ids=["r4-nutrition-order", "dstu2-medication-order", "malformed-but-unread-type"],
)
def test_a_draft_of_a_type_no_rule_reads_is_ignored(raw: dict[str, Any]) -> None:
    assert draft_reading(raw) is DraftReading.IGNORE


@pytest.mark.parametrize(
    "raw",
    [
        lumbar_mri(),
        lumbar_mri(code={"text": "MRI lumbar spine"}),  # no coding at all
        lumbar_mri(performerType={"coding": []}),
        antibiotic(dosageInstruction=STU3_DOSAGE),  # the rest of the draft is not looked at
        {"resourceType": "ServiceRequest"},  # no code field: nothing is hidden
    ],
    ids=["coded", "text-only", "empty-performer", "stu3-dosage", "no-code"],
)
def test_a_draft_with_well_formed_codes_is_read_only_when_they_match(raw: Any) -> None:
    assert draft_reading(raw) is DraftReading.IF_MATCHED


@pytest.mark.parametrize(
    "raw",
    [
        lumbar_mri(code="72148"),  # a string where a CodeableConcept belongs
        lumbar_mri(code={"coding": {"system": CPT, "code": "72148"}}),  # coding not a list
        lumbar_mri(code={"coding": ["72148"]}),  # a coding that is not an object
        lumbar_mri(code={"coding": None}),
        lumbar_mri(performerType=["physio"]),  # the second code field counts too
        antibiotic(medicationCodeableConcept=[{"text": "amoxicillin"}]),
        {"id": "x", "status": "draft"},  # no resourceType
        {"resourceType": 7},
        "ServiceRequest/d1",  # not an object
        None,
    ],
    ids=[
        "code-string",
        "coding-object",
        "coding-item-string",
        "coding-null",
        "performer-list",
        "medication-list",
        "no-type",
        "type-not-string",
        "string",
        "null",
    ],
)
def test_a_draft_whose_codes_may_be_hidden_must_be_readable(raw: object) -> None:
    assert draft_reading(raw) is DraftReading.REQUIRED


def test_an_ignored_type_is_never_validated_nor_refused(sets: ValueSets) -> None:
    rec = with_drafts(sets, {"resourceType": "NutritionOrder", "status": ["not", "R4"]})
    assert (rec.models_built, rec.unreadable_drafts, rec.entries) == (PATIENT_ONLY, [], [])


def test_unmatched_well_formed_codes_spare_the_draft_validation(sets: ValueSets) -> None:
    rec = with_drafts(sets, antibiotic(dosageInstruction=STU3_DOSAGE))
    assert (rec.models_built, rec.unreadable_drafts, rec.entries) == (PATIENT_ONLY, [], [])


def test_a_malformed_code_field_makes_an_unreadable_draft_refused_by_its_position(
    sets: ValueSets,
) -> None:
    rec = with_drafts(
        sets,
        lumbar_mri(),
        antibiotic(medicationCodeableConcept="amoxicillin", dosageInstruction=STU3_DOSAGE),
    )
    assert rec.models_built == PATIENT_ONLY + 2
    assert [index for index, _ in rec.unreadable_drafts] == [1]
    assert [e.id for e in rec.entries] == ["d1"]


def test_a_matched_draft_that_cannot_be_read_is_refused(sets: ValueSets) -> None:
    rec = with_drafts(sets, lumbar_mri(status=["draft"], intent={"code": "order"}))
    assert rec.unreadable_drafts == [(0, "invalid at intent")]
    assert rec.entries == []


def test_a_draft_that_is_not_a_resource_is_refused(sets: ValueSets) -> None:
    rec = with_drafts(sets, "ServiceRequest/d1")
    assert rec.unreadable_drafts == [(0, "not a FHIR resource")]


def test_a_matched_readable_draft_counts_as_ordered_now(sets: ValueSets) -> None:
    rec = with_drafts(sets, lumbar_mri())
    (entry,) = rec.entries
    assert (entry.id, entry.draft, entry.date, entry.kind) == ("d1", True, NOW, "order")
    assert "lmri-lumbar" in entry.valuesets
